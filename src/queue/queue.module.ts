import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { RedisConnections } from '../redis/redis-connections.service';
import { QueueErrors } from './queue-errors';
import { DEAD_LETTERS_QUEUE, TURNS_QUEUE } from './queue.constants';

/**
 * Queue registration for every role: receivers enqueue, workers enqueue too (re-arms, delays).
 * The producer connection has no offline queue; the hash-tagged prefix keeps BullMQ's
 * keys in the same Cluster slot as ours.
 */
@Module({
  imports: [
    BullModule.forRootAsync({
      inject: [AppConfig, RedisConnections],
      useFactory: (config: AppConfig, connections: RedisConnections) => ({
        connection: connections.producer,
        prefix: config.redisKeyRoot,
      }),
    }),
    BullModule.registerQueue({ name: TURNS_QUEUE }, { name: DEAD_LETTERS_QUEUE }),
  ],
  providers: [QueueErrors],
  exports: [BullModule],
})
export class QueueModule {}
