import { Injectable } from '@nestjs/common';

/** A named condition that must hold for the process to be live (e.g. "the job loop runs"). */
export type LivenessCheck = () => boolean;

/**
 * Process-level health facts that are not Redis: whether SIGTERM arrived, and the liveness and
 * readiness conditions other modules register (the worker's job loop, the receiver's ingest
 * connection).
 */
@Injectable()
export class HealthState {
  private shutdownRequested = false;
  private readonly liveness = new Map<string, LivenessCheck>();
  private readonly readiness = new Map<string, LivenessCheck>();

  get shuttingDown(): boolean {
    return this.shutdownRequested;
  }

  beginShutdown(): void {
    this.shutdownRequested = true;
  }

  registerLiveness(name: string, check: LivenessCheck): void {
    this.liveness.set(name, check);
  }

  registerReadiness(name: string, check: LivenessCheck): void {
    this.readiness.set(name, check);
  }

  failedLiveness(): string[] {
    return [...this.liveness].filter(([, check]) => !check()).map(([name]) => name);
  }

  failedReadiness(): string[] {
    return [...this.readiness].filter(([, check]) => !check()).map(([name]) => name);
  }
}
