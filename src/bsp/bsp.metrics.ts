import { Injectable } from '@nestjs/common';
import { MetricsService } from '../metrics/metrics.service';
import { TEMPLATE_CONFIG_CODES } from './bsp-error-taxonomy';
import { type BspSendError } from './bsp-send.error';

export type BspOperation = 'text' | 'template' | 'read';

/**
 * Records BSP calls into MetricsService's tawasul_bsp_errors_total{code,class} and
 * tawasul_config_alert{code}.
 *
 * The alert is deliberately simple: a config-class error sets its code to 1; the next successful
 * call clears it (back to 0) because it proves the token, permissions and number work again; codes
 * about one template (TEMPLATE_CONFIG_CODES) only a successful template send clears. The gauge is
 * per process: alert on `max by (code) (tawasul_config_alert) == 1`.
 *
 * It holds the raised codes, so BspModule provides one and hands it to the adapter: a second
 * instance would never clear the alerts the first one raised.
 */
@Injectable()
export class BspMetrics {
  private readonly raised = new Set<string>();

  constructor(private readonly metrics: MetricsService) {}

  recordError(error: BspSendError): void {
    const code = String(error.code);
    this.metrics.bspErrors.inc({ code, class: error.kind });
    if (error.kind !== 'config') return;
    this.metrics.configAlert.set({ code }, 1);
    this.raised.add(code);
  }

  recordSuccess(operation: BspOperation): void {
    for (const code of this.raised) {
      if (operation !== 'template' && TEMPLATE_CONFIG_CODES.has(Number(code))) continue;
      this.metrics.configAlert.set({ code }, 0);
      this.raised.delete(code);
    }
  }

  /** Codes currently alerting in this process. */
  get alerts(): string[] {
    return [...this.raised];
  }
}
