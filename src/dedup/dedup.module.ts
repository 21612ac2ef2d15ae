import { Module } from '@nestjs/common';
import { QueueModule } from '../queue/queue.module';
import { DedupStore } from './dedup.store';
import { IngestService } from './ingest.service';
import { RedisDedupStore } from './redis-dedup.store';
import { WakeUpService } from './wake-up.service';

@Module({
  imports: [QueueModule],
  providers: [{ provide: DedupStore, useClass: RedisDedupStore }, IngestService, WakeUpService],
  exports: [IngestService, WakeUpService, DedupStore],
})
export class DedupModule {}
