import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import { type Queue } from 'bullmq';
import { AppLogger } from '../logging/app-logger';
import { isConnectionError } from '../redis/redis-client';
import { RedisConnections } from '../redis/redis-connections.service';
import { DEAD_LETTERS_QUEUE, TURNS_QUEUE } from './queue.constants';

/**
 * Listens to the queues' 'error' events in every role. Without a listener BullMQ prints
 * each one with its stack on stderr: during a Redis outage, every reconnect attempt. Connection
 * errors are the outage the Redis connections already report.
 */
@Injectable()
export class QueueErrors {
  constructor(
    @InjectQueue(TURNS_QUEUE) turns: Queue,
    @InjectQueue(DEAD_LETTERS_QUEUE) deadLetters: Queue,
    connections: RedisConnections,
    appLogger: AppLogger,
  ) {
    const logger = appLogger.child('queue');
    for (const queue of [turns, deadLetters]) {
      queue.on('error', (err: Error) => {
        if (isConnectionError(err)) connections.outage.seen('bullmq-queue', err);
        else logger.warn({ err, queue: queue.name }, 'queue error');
      });
    }
  }
}
