import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

/**
 * Preloaded into a server under test when BENCH_PROFILE_DIR is set (see load.harness.ts): SIGUSR2
 * starts V8's CPU profiler, the next SIGUSR2 writes `<BENCH_PROFILE_DIR>/<BENCH_PROFILE_NAME>.<n>.cpuprofile`.
 * Unlike `--cpu-prof`, the profile covers the measured load only: no start-up, no warm-up.
 */
const dir = process.env.BENCH_PROFILE_DIR;
const name = process.env.BENCH_PROFILE_NAME ?? `pid${process.pid}`;
if (dir) {
  mkdirSync(dir, { recursive: true });
  const session = new Session();
  session.connect();
  let running = false;
  let count = 0;
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      session.post('Profiler.enable', () =>
        session.post('Profiler.setSamplingInterval', { interval: 500 }, () => session.post('Profiler.start')),
      );
      return;
    }
    running = false;
    session.post('Profiler.stop', (err, result) => {
      if (err) return;
      const file = join(dir, `${name}.${++count}.cpuprofile`);
      // Written aside, then renamed: the harness waits for the file and must never read half of it.
      writeFileSync(`${file}.tmp`, JSON.stringify(result.profile));
      renameSync(`${file}.tmp`, file);
    });
  });
}
