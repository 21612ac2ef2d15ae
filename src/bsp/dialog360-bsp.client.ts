import { type AppConfig } from '../config/app-config';
import { type AppLogger } from '../logging/app-logger';
import { type BspMetrics } from './bsp.metrics';
import { CloudApiBspClient, type CloudApiClientOptions } from './cloud-api-bsp.client';

/**
 * 360dialog: the same Cloud API bodies at `{D360_BASE_URL}/messages`, with no version and no
 * phone_number_id in the path because the channel key is scoped to one number.
 */
export class Dialog360BspClient extends CloudApiBspClient {
  readonly provider = '360dialog' as const;

  constructor(config: AppConfig, metrics: BspMetrics, appLogger: AppLogger, options?: CloudApiClientOptions) {
    const { D360_BASE_URL, D360_API_KEY } = config.env;
    if (!D360_API_KEY) throw new Error('Dialog360BspClient needs D360_API_KEY');
    const url = `${D360_BASE_URL.replace(/\/+$/, '')}/messages`;
    super(url, { 'D360-API-KEY': D360_API_KEY }, metrics, appLogger, options);
  }
}
