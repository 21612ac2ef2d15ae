import Fastify, { type FastifyInstance } from 'fastify';
import { AppConfig } from '../config/app-config';
import { type EnvSchema } from '../config/env.schema';
import { MetricsService } from '../metrics/metrics.service';
import { API_ROUTE, installApiFallback, installHttpHooks } from './http-hooks';

const KEY = 'unit-key';

function server(): FastifyInstance {
  const fastify = Fastify();
  const config = new AppConfig({ API_KEYS: KEY, WEBHOOK_BODY_LIMIT: 1_000_000 } as EnvSchema);
  installHttpHooks(fastify, config, new MetricsService(), undefined);
  return fastify;
}

describe('installHttpHooks: /v1 routes', () => {
  it('refuses at registration a /v1 route without the API_ROUTE flag: it would answer without a key', () => {
    const fastify = server();
    expect(() => fastify.get('/v1/unflagged', () => 'open')).toThrow(/needs the apiRoute route config flag/);
    expect(() => fastify.get('/v1', () => 'open')).toThrow(/needs the apiRoute route config flag/);
    expect(() => fastify.get('/v1x', () => 'not under /v1')).not.toThrow();
  });

  it('checks the key before the body is read: a body the handler would refuse is a 401 without one', async () => {
    const fastify = server();
    const handler = jest.fn(() => ({ ok: true }));
    fastify.post('/v1/things', { config: { [API_ROUTE]: 'key' } }, handler);
    fastify.get('/v1/open', { config: { [API_ROUTE]: 'open' } }, () => ({ open: true }));
    installApiFallback(fastify);
    const post = (authorization: string | undefined, payload: string) =>
      fastify.inject({
        method: 'POST',
        url: '/v1/things',
        headers: { 'content-type': 'application/json', ...(authorization && { authorization }) },
        payload,
      });

    for (const authorization of [undefined, 'Bearer wrong', `Basic ${KEY}`]) {
      const denied = await post(authorization, '{"not json');
      expect({ authorization, status: denied.statusCode, body: denied.json() }).toEqual({
        authorization,
        status: 401,
        body: { error: 'unauthorized', message: expect.any(String) },
      });
      expect(denied.headers['www-authenticate']).toBe('Bearer');
      expect(denied.headers.connection).toBe('close');
    }
    expect((await post(`Bearer ${KEY}`, '{"not json')).statusCode).toBe(400);
    expect((await post(`Bearer ${KEY}`, '{}')).json()).toEqual({ ok: true });
    expect(handler).toHaveBeenCalledTimes(1);
    expect((await fastify.inject({ method: 'GET', url: '/v1/open' })).json()).toEqual({ open: true });

    const wrongMethod = await fastify.inject({
      method: 'DELETE',
      url: '/v1/things',
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect({
      status: wrongMethod.statusCode,
      allow: wrongMethod.headers.allow,
      error: wrongMethod.json().error,
    }).toEqual({
      status: 405,
      allow: 'POST',
      error: 'method_not_allowed',
    });
    await fastify.close();
  });
});
