import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { RedisConversationStore } from '../../src/conversation/redis-conversation.store';
import { RedisOutboundRecords } from '../../src/conversation/redis-outbound-records';
import { AppLogger } from '../../src/logging/app-logger';
import { RedisConnections } from '../../src/redis/redis-connections.service';
import { RedisKeys } from '../../src/redis/redis-keys';
import { Clock } from '../../src/time/clock';
import { contractConfig, contractPricing, conversationStoreContract } from '../utils/conversation-store-contract';
import { RecordingCostLedger } from '../utils/in-memory-outbound-records';
import { deleteKeys } from '../utils/test-app';

// The same cases run against the in-memory fakes in test/middle/conversation-store-contract.spec.ts.
conversationStoreContract('Redis', () => {
  const config = contractConfig();
  const connections = new RedisConnections(config, new AppLogger('silent'));
  const keys = new RedisKeys(config.redisKeyRoot);
  const ledger = new RecordingCostLedger();
  const store = new RedisConversationStore(connections.worker, keys, config);
  const records = new RedisOutboundRecords(connections, keys, config, contractPricing(config), ledger, new Clock());
  const redis = new Redis(config.env.REDIS_URL, { maxRetriesPerRequest: 1 });
  return Promise.resolve({
    store,
    records,
    ledger,
    config,
    enqueue: async (lane, ...items) => {
      await redis.rpush(keys.inbox(lane), ...items.map((item) => JSON.stringify(item)));
    },
    elapse: (ms) => sleep(ms),
    now: () => Date.now(),
    record: (wamid) => redis.hgetall(keys.outbound(wamid)),
    chatCostMicros: async (chat) => Number((await redis.get(keys.chatCost(chat))) ?? 0),
    close: async () => {
      await connections.onApplicationShutdown();
      await deleteKeys(redis, config.redisKeyRoot);
      redis.disconnect();
    },
  });
});
