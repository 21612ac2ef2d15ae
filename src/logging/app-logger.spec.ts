import pino from 'pino';
import { errorFields } from './app-logger';

describe('errorFields (the `err` serializer)', () => {
  it('keeps the type, message, code and stack of an error, and nothing it carries besides', () => {
    const err = Object.assign(new TypeError('request failed'), {
      code: 'ECONNRESET',
      config: { data: '{"text":"my blood test results"}' },
      response: { data: 'patient text' },
    });
    const lines: string[] = [];
    const logger = pino({ serializers: { err: errorFields } }, { write: (line: string) => void lines.push(line) });
    logger.warn({ err }, 'send failed');
    const logged = JSON.parse(lines[0]) as { err: Record<string, unknown> };
    expect(Object.keys(logged.err).sort()).toEqual(['code', 'message', 'stack', 'type']);
    expect(logged.err).toMatchObject({ type: 'TypeError', message: 'request failed', code: 'ECONNRESET' });
    expect(String(logged.err.stack)).toContain('app-logger.spec.ts');
    expect(lines[0]).not.toContain('blood test');
  });

  it('passes anything that is not an error through', () => {
    expect(errorFields('timeout')).toBe('timeout');
  });
});
