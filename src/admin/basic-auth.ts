import { type FastifyReply, type FastifyRequest, type onRequestHookHandler } from 'fastify';
import { safeEqual } from '../security/safe-equal';

/**
 * HTTP basic auth for one user. Name and password are both compared, in constant time, whatever
 * the first comparison said, so timing tells nothing about either.
 */
export function basicAuth(user: string, password: string, realm: string): onRequestHookHandler {
  const challenge = `Basic realm="${realm}", charset="UTF-8"`;
  return (req: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    const credentials = basicCredentials(req.headers.authorization);
    const userOk = safeEqual(credentials?.user, user);
    const passwordOk = safeEqual(credentials?.password, password);
    if (userOk && passwordOk) return done();
    void reply
      .status(401)
      .header('WWW-Authenticate', challenge)
      .header('Cache-Control', 'no-store')
      .send({ error: 'unauthorized', message: 'basic authentication required' });
  };
}

function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
