import { Module } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { CostLedger } from './cost-ledger';
import { Pricing } from './pricing';
import { RedisCostLedger } from './redis-cost-ledger';

/**
 * Message pricing and the cost ledger (docs/costs.md), for the worker (records) and the receiver's
 * API (reports). Relies on the global AppConfig, MetricsService, RedisConnections and RedisKeys.
 *
 * PRICING_FILE is read when the module is built: a missing or invalid file stops start-up with a
 * PricingFileError naming every bad entry.
 */
@Module({
  providers: [
    {
      provide: Pricing,
      inject: [AppConfig],
      useFactory: (config: AppConfig): Pricing => Pricing.fromFile(config.env.PRICING_FILE, config.env.BSP_PROVIDER),
    },
    { provide: CostLedger, useClass: RedisCostLedger },
  ],
  exports: [Pricing, CostLedger],
})
export class CostsModule {}
