import { Global, Injectable, Module } from '@nestjs/common';

/**
 * Business time: what decides the 24-hour customer service window and the cost ledger's day.
 * One injectable source so tests can move it (a day later, a window closes) without sleeping.
 * Leases, backoff and timers keep real time (Date.now): moving this clock must never expire a
 * lease or wake a parked turn early.
 */
@Injectable()
export class Clock {
  private offsetMs = 0;

  now(): number {
    return Date.now() + this.offsetMs;
  }

  /** The business time of a real instant (a Date.now() taken elsewhere, e.g. an item's arrival). */
  businessTimeOf(realMs: number): number {
    return realMs + this.offsetMs;
  }

  /** Tests only: moves business time forward (or back, with a negative value). */
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

@Global()
@Module({ providers: [Clock], exports: [Clock] })
export class ClockModule {}
