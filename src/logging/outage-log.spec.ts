import pino from 'pino';
import { OutageLog } from './outage-log';

describe('OutageLog', () => {
  let lines: Record<string, unknown>[];
  let up: boolean;
  let log: OutageLog;

  beforeEach(() => {
    jest.useFakeTimers();
    lines = [];
    up = true;
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    log = new OutageLog(logger, 'redis', () => up, 30_000);
  });

  afterEach(() => {
    log.close();
    jest.useRealTimers();
  });

  const messages = (minLevel = 30): string[] =>
    lines.filter((l) => Number(l.level) >= minLevel).map((l) => String(l.msg));

  it('says when an outage starts, reminds every 30 s with how long it has lasted, and says when it ends', () => {
    up = false;
    for (let i = 0; i < 100; i++) {
      log.failed(i % 2 ? 'worker' : 'producer', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
      jest.advanceTimersByTime(650);
    }
    expect(messages()).toEqual(['redis connection lost', 'redis still unreachable', 'redis still unreachable']);
    expect(lines.find((l) => l.msg === 'redis still unreachable')).toMatchObject({ level: 40, downForMs: 30_000 });

    up = true;
    log.check();
    expect(messages().at(-1)).toBe('redis connection restored');
    expect(lines.at(-1)).toMatchObject({ level: 30, downForMs: 65_000 });
    jest.advanceTimersByTime(120_000);
    expect(messages()).toHaveLength(4);
  });

  it('ends the outage only when every connection is up again', () => {
    up = false;
    log.failed('producer', new Error('connect ECONNREFUSED'));
    log.check();
    expect(log.active).toBe(true);
    up = true;
    log.check();
    expect(log.active).toBe(false);
  });

  it('never starts an outage from errors it is only told about, nor after close', () => {
    log.seen('bullmq-worker', new Error('connect ECONNREFUSED'));
    expect(messages()).toEqual([]);
    log.close();
    up = false;
    log.failed('producer', new Error('connect ECONNREFUSED'));
    expect(messages()).toEqual([]);
    jest.advanceTimersByTime(60_000);
    expect(messages()).toEqual([]);
  });
});
