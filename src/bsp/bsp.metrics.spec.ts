import { MetricsService } from '../metrics/metrics.service';
import { BspMetrics } from './bsp.metrics';
import { BspSendError } from './bsp-send.error';

const value = async (
  metrics: MetricsService,
  name: string,
  labels: Record<string, string>,
): Promise<number | undefined> => {
  const metric = metrics.registry.getSingleMetric(name);
  const data = await metric!.get();
  return data.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
};

describe('BspMetrics', () => {
  it('counts errors by code and class and raises the alert for config errors only', async () => {
    const metrics = new MetricsService();
    const bsp = new BspMetrics(metrics);
    bsp.recordError(new BspSendError(131056, 'pair_rate', 'not_sent', 'x'));
    bsp.recordError(new BspSendError(131056, 'pair_rate', 'not_sent', 'x'));
    bsp.recordError(new BspSendError(190, 'config', 'not_sent', 'x'));
    expect(await value(metrics, 'tawasul_bsp_errors_total', { code: '131056', class: 'pair_rate' })).toBe(2);
    expect(await value(metrics, 'tawasul_config_alert', { code: '190' })).toBe(1);
    expect(await value(metrics, 'tawasul_config_alert', { code: '131056' })).toBeUndefined();
  });

  it('clears account alerts on any success, template alerts only on a template success', async () => {
    const metrics = new MetricsService();
    const bsp = new BspMetrics(metrics);
    bsp.recordError(new BspSendError(190, 'config', 'not_sent', 'x'));
    bsp.recordError(new BspSendError(132001, 'config', 'not_sent', 'x'));
    bsp.recordSuccess('text');
    expect(await value(metrics, 'tawasul_config_alert', { code: '190' })).toBe(0);
    expect(await value(metrics, 'tawasul_config_alert', { code: '132001' })).toBe(1);
    expect(bsp.alerts).toEqual(['132001']);
    bsp.recordSuccess('template');
    expect(await value(metrics, 'tawasul_config_alert', { code: '132001' })).toBe(0);
    expect(bsp.alerts).toEqual([]);
  });
});
