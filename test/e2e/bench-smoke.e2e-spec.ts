import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PIECES, type Piece, parseTable, tableProblems } from '../../bench/all.table';

/*
 * A smoke test of the benchmark scripts, not of speed (no figure is compared with anything):
 * `npm run bench`'s runner with BENCH_QUICK=1 runs each piece briefly against the BUILT app and
 * must print its one table with every row and a number in each. Another engineer's change that
 * breaks a bench (a renamed env variable, a moved module, a route) fails here, not on the day the
 * full benchmark is run.
 */

const ROOT = resolve(__dirname, '..', '..');
// The fastest pieces that still cover every bench file the table is made of; capacity is optional.
const SMOKE_PIECES: Piece[] = PIECES.filter((p) => p !== 'capacity');

// Four pieces, each starting two to four app processes: generous for a busy 2-core CI.
jest.setTimeout(300_000);

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function runBench(env: Record<string, string>): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    // Its own process group: on a timeout the apps it spawned go down with it.
    const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', 'bench/all.bench.ts'], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    const timer = setTimeout(() => {
      process.kill(-child.pid!, 'SIGKILL');
      reject(new Error(`bench/all.bench.ts did not finish in time\n${out}\n${err}`));
    }, 280_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, out, err });
    });
  });
}

describe('npm run bench, BENCH_QUICK=1 (smoke test of the scripts)', () => {
  let appCopy: string;

  beforeAll(() => {
    // As `npm start` does: build dist/ only when it is missing or older than src/.
    const { needsBuild } = createRequire(__filename)(join(ROOT, 'scripts', 'start.js')) as {
      needsBuild(root: string): boolean;
    };
    if (needsBuild(ROOT)) execFileSync('npx', ['nest', 'build'], { cwd: ROOT, stdio: 'inherit', timeout: 240_000 });
    // The benches run a copy of the build (BENCH_APP_ENTRY): a rebuild of this checkout meanwhile
    // empties dist/ first, and an app started then would not find itself.
    appCopy = mkdtempSync(join(tmpdir(), 'tawasul-bench-app-'));
    cpSync(join(ROOT, 'dist'), join(appCopy, 'dist'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(appCopy, 'node_modules'), 'dir');
  });

  afterAll(() => {
    if (appCopy) rmSync(appCopy, { recursive: true, force: true });
  });

  it('prints one table with every row of every piece, each with a figure', async () => {
    const run = await runBench({
      BENCH_QUICK: '1',
      BENCH_ONLY: SMOKE_PIECES.join(','),
      BENCH_APP_ENTRY: join(appCopy, 'dist', 'main.js'),
    });
    const context = `\n--- stdout ---\n${run.out.slice(-6000)}\n--- stderr ---\n${run.err.slice(-3000)}`;
    const rows = parseTable(run.out);
    const problems = tableProblems(rows, SMOKE_PIECES);
    if (problems.length > 0 || run.code !== 0) throw new Error(`exit ${run.code}: ${problems.join('; ')}${context}`);
    for (const row of rows) expect(row.bar.length).toBeGreaterThan(0);
    expect(run.out).toMatch(/load average [\d.]+ before, [\d.]+ after/);
  });
});
