import { type DynamicModule, Global, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { AppConfig } from './app-config';

/**
 * Exposes the validated, typed AppConfig everywhere (and the same values through ConfigService).
 * Validation happens before the module graph is built (validateEnv in main.ts / the test helper),
 * so that a bad variable ends start-up with one readable line instead of a Nest stack trace.
 * ConfigModule's own `validate` is not used: it copies defaults back into process.env, which
 * would leak one app's settings into another started from the same process (tests, children).
 */
@Global()
@Module({})
export class AppConfigModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppConfigModule,
      imports: [ConfigModule.forRoot({ ignoreEnvFile: true, ignoreEnvVars: true, load: [() => ({ ...config.env })] })],
      providers: [{ provide: AppConfig, useValue: config }],
      exports: [AppConfig],
    };
  }
}
