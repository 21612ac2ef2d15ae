import { Global, Module } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { AppLogger } from './app-logger';
import { LogHasher } from './log-hasher';

@Global()
@Module({
  providers: [
    { provide: AppLogger, inject: [AppConfig], useFactory: (c: AppConfig) => new AppLogger(c.env.LOG_LEVEL) },
    { provide: LogHasher, inject: [AppConfig], useFactory: (c: AppConfig) => new LogHasher(c.logHashKey) },
  ],
  exports: [AppLogger, LogHasher],
})
export class LoggingModule {}
