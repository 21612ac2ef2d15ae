import { Counter, Gauge, type Registry } from 'prom-client';
import { type MetricsService } from '../metrics/metrics.service';
import { TEMPLATE_CONFIG_CODES } from './bsp-error-taxonomy';
import { type BspSendError } from './bsp-send.error';

export type BspOperation = 'text' | 'template' | 'read';

function counter(registry: Registry): Counter<'code' | 'class'> {
  const existing = registry.getSingleMetric('tawasul_bsp_errors_total');
  if (existing) return existing as Counter<'code' | 'class'>;
  return new Counter({
    name: 'tawasul_bsp_errors_total',
    help: 'Failed BSP calls by error code (Meta error.code, HTTP status or transport code) and class',
    labelNames: ['code', 'class'] as const,
    registers: [registry],
  });
}

function gauge(registry: Registry): Gauge<'code'> {
  const existing = registry.getSingleMetric('tawasul_config_alert');
  if (existing) return existing as Gauge<'code'>;
  return new Gauge({
    name: 'tawasul_config_alert',
    help: '1 while a BSP configuration error (token, permission, number, template) is unresolved',
    labelNames: ['code'] as const,
    registers: [registry],
  });
}

const instances = new WeakMap<MetricsService, BspMetrics>();

/**
 * The BSP's metrics on the process registry: tawasul_bsp_errors_total{code,class} and
 * tawasul_config_alert{code}.
 *
 * The alert is deliberately simple: a config-class error sets its code to 1; the next successful
 * call clears it (back to 0) because it proves the token, permissions and number work again. Codes
 * about one template (132001, 132015, 132016) are cleared only by a successful template send. The
 * gauge is per process: alert on `max by (code) (tawasul_config_alert) == 1`.
 *
 * One instance per MetricsService (`BspMetrics.for`), so adapters built side by side share state.
 */
export class BspMetrics {
  readonly errors: Counter<'code' | 'class'>;
  readonly configAlert: Gauge<'code'>;
  private readonly raised = new Set<string>();

  private constructor(registry: Registry) {
    this.errors = counter(registry);
    this.configAlert = gauge(registry);
  }

  static for(metrics: MetricsService): BspMetrics {
    let instance = instances.get(metrics);
    if (!instance) {
      instance = new BspMetrics(metrics.registry);
      instances.set(metrics, instance);
    }
    return instance;
  }

  recordError(error: BspSendError): void {
    const code = String(error.code);
    this.errors.inc({ code, class: error.kind });
    if (error.kind !== 'config') return;
    this.configAlert.set({ code }, 1);
    this.raised.add(code);
  }

  recordSuccess(operation: BspOperation): void {
    for (const code of this.raised) {
      if (operation !== 'template' && TEMPLATE_CONFIG_CODES.has(Number(code))) continue;
      this.configAlert.set({ code }, 0);
      this.raised.delete(code);
    }
  }

  /** Codes currently alerting in this process. */
  get alerts(): string[] {
    return [...this.raised];
  }
}
