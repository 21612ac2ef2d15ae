import { Global, Module } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { RedisConnections } from './redis-connections.service';
import { RedisKeys } from './redis-keys';
import { RedisPolicyCheck } from './redis-policy.check';

@Global()
@Module({
  providers: [
    RedisConnections,
    RedisPolicyCheck,
    { provide: RedisKeys, inject: [AppConfig], useFactory: (c: AppConfig) => new RedisKeys(c.redisKeyRoot) },
  ],
  exports: [RedisConnections, RedisKeys],
})
export class RedisModule {}
