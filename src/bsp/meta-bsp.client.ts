import { type AppConfig } from '../config/app-config';
import { type AppLogger } from '../logging/app-logger';
import { type BspMetrics } from './bsp.metrics';
import { CloudApiBspClient, type CloudApiClientOptions } from './cloud-api-bsp.client';

/** Cloud API direct: `{META_GRAPH_URL}/{META_API_VERSION}/{WHATSAPP_PHONE_NUMBER_ID}/messages`, Bearer token. */
export class MetaBspClient extends CloudApiBspClient {
  readonly provider = 'meta' as const;

  constructor(config: AppConfig, metrics: BspMetrics, appLogger: AppLogger, options?: CloudApiClientOptions) {
    const { META_GRAPH_URL, META_API_VERSION, WHATSAPP_PHONE_NUMBER_ID, META_ACCESS_TOKEN } = config.env;
    if (!WHATSAPP_PHONE_NUMBER_ID || !META_ACCESS_TOKEN) {
      throw new Error('MetaBspClient needs WHATSAPP_PHONE_NUMBER_ID and META_ACCESS_TOKEN');
    }
    const base = META_GRAPH_URL.replace(/\/+$/, '');
    const url = `${base}/${META_API_VERSION}/${WHATSAPP_PHONE_NUMBER_ID}/messages`;
    super(url, { authorization: `Bearer ${META_ACCESS_TOKEN}` }, metrics, appLogger, options);
  }
}
