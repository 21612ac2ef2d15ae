import { type DynamicModule, Module } from '@nestjs/common';
import { type AppRole, servesHttpApi } from '../app-role';
import { AppConfig } from '../config/app-config';
import { RedisConversationStore } from '../conversation/redis-conversation.store';
import { Pricing } from '../costs/pricing';
import { DemoClinicController } from './demo-clinic.controller';
import { DemoClinic } from './demo-clinic.service';
import { SandboxAssets } from './sandbox-assets';
import { SandboxController } from './sandbox.controller';
import { SandboxState } from './sandbox-state.service';
import { SandboxStreams } from './sandbox-streams.service';

/**
 * GET /sandbox only exists with BSP_PROVIDER=sandbox, which is refused in production and listens
 * on 127.0.0.1 unless HOST says otherwise: the page needs no authentication. Receivers (and `all`)
 * serve it; a worker never does.
 */
export function sandboxEnabled(role: AppRole, config: AppConfig): boolean {
  return servesHttpApi(role) && config.env.BSP_PROVIDER === 'sandbox';
}

@Module({})
export class SandboxModule {
  static forRole(role: AppRole, config: AppConfig): DynamicModule {
    if (!sandboxEnabled(role, config)) return { module: SandboxModule };
    return {
      module: SandboxModule,
      // The demo clinic API only where ClinicActions was pointed at it (AppConfig.clinicApiBaseUrl).
      controllers: config.demoClinic ? [SandboxController, DemoClinicController] : [SandboxController],
      providers: [
        RedisConversationStore.provider('ingest'),
        // Only the rate table: the ledger (CostsModule) would open a worker connection for nothing.
        {
          provide: Pricing,
          inject: [AppConfig],
          useFactory: (c: AppConfig): Pricing => Pricing.fromFile(c.env.PRICING_FILE, c.env.BSP_PROVIDER),
        },
        { provide: SandboxAssets, useFactory: () => new SandboxAssets() },
        SandboxState,
        SandboxStreams,
        DemoClinic,
      ],
    };
  }
}
