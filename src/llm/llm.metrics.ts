import { Counter, Histogram, type Registry } from 'prom-client';
import { LLM_FAILURE_KINDS, type LlmFailureKind } from './llm.client';

const created = new WeakMap<Registry, LlmMetrics>();

/**
 * The LLM metrics (README, Metrics: seconds, failures by kind, refused slots), registered on the
 * process registry that MetricsService serves. Created once per registry: prom-client refuses a
 * second metric with the same name.
 */
export class LlmMetrics {
  readonly seconds: Histogram;
  readonly failures: Counter<'kind'>;
  readonly slotsBusy: Counter;

  private constructor(registry: Registry) {
    this.seconds = new Histogram({
      name: 'tawasul_llm_seconds',
      help: 'Inference time of successful LLM calls',
      buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60],
      registers: [registry],
    });
    this.failures = new Counter({
      name: 'tawasul_llm_failures_total',
      help: 'Failed LLM calls by kind: error, timeout, empty, truncated, context, config',
      labelNames: ['kind'] as const,
      registers: [registry],
    });
    this.slotsBusy = new Counter({
      name: 'tawasul_llm_slots_busy_total',
      help: 'Inference slot requests refused because LLM_MAX_CONCURRENCY calls were in flight',
      registers: [registry],
    });
    // Zero series exist from the start, so rate() and alerts work before the first failure.
    for (const kind of LLM_FAILURE_KINDS) this.failures.inc({ kind }, 0);
  }

  static for(registry: Registry): LlmMetrics {
    let metrics = created.get(registry);
    if (!metrics) {
      metrics = new LlmMetrics(registry);
      created.set(registry, metrics);
    }
    return metrics;
  }

  observeSuccess(latencyMs: number): void {
    this.seconds.observe(latencyMs / 1000);
  }

  observeFailure(kind: LlmFailureKind): void {
    this.failures.inc({ kind });
  }
}
