import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, rmSync, symlinkSync, type WriteStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { killOnExit } from '../../test/utils/kill-on-exit';

export const REPO_ROOT = resolve(__dirname, '..', '..');

/**
 * A copy of dist/ for this run, with node_modules linked beside it. Another engineer's `nest build`
 * empties dist/ first (deleteOutDir): without the copy, a process restarted in the middle of a run
 * could find no app to start, or a different one.
 */
export async function snapshotDist(runDir: string): Promise<string> {
  const root = join(runDir, 'app');
  for (let attempt = 1; ; attempt++) {
    if (existsSync(join(REPO_ROOT, 'dist', 'main.js'))) {
      rmSync(root, { recursive: true, force: true });
      cpSync(join(REPO_ROOT, 'dist'), join(root, 'dist'), { recursive: true });
      symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
      // A copy taken while a build was writing dist/ lacks modules: loading the module graph tells.
      const loads = spawnSync(
        process.execPath,
        ['-e', 'require(process.argv[1])', join(root, 'dist', 'app.module.js')],
        {
          cwd: REPO_ROOT,
          stdio: 'ignore',
          timeout: 60_000,
        },
      );
      if (loads.status === 0) return join(root, 'dist', 'main.js');
    }
    if (attempt >= 40) throw new Error('no complete dist/ to run: run `npm run build` first');
    await sleep(3000);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * One process of the built app in a role, on a fixed port so that a restart comes back where the
 * load balancer (the sender) expects it. Its stdout and stderr go to its own log file, every
 * start marked with a line of its own.
 */
export class AppProcess {
  starts = 0;
  kills = 0;
  private child?: ChildProcess;
  private exited?: Promise<void>;

  constructor(
    readonly name: string,
    readonly role: 'receiver' | 'worker',
    readonly port: number,
    private readonly env: Record<string, string>,
    private readonly mainJs: string,
    private readonly log: WriteStream,
    private readonly nice = 0,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process and resolves once GET /health/live answers 200. */
  async start(timeoutMs = 60_000): Promise<void> {
    this.starts++;
    this.log.write(`--- ${this.name} start #${this.starts} at ${new Date().toISOString()}\n`);
    const argv = [process.execPath, this.mainJs, `--role=${this.role}`];
    // nice execs node in place: the pid stays the app's, for the signals below.
    if (this.nice > 0) argv.unshift('nice', '-n', String(this.nice));
    const child = spawn(argv[0], argv.slice(1), {
      cwd: REPO_ROOT,
      env: { ...this.env, PORT: String(this.port), PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    killOnExit(child);
    child.stdout.pipe(this.log, { end: false });
    child.stderr.pipe(this.log, { end: false });
    this.child = child;
    this.exited = new Promise((r) =>
      child.once('exit', (code, signal) => {
        this.log.write(`--- ${this.name} exited (code ${code}, signal ${signal}) at ${new Date().toISOString()}\n`);
        r();
      }),
    );
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${this.name} exited while starting (see its log)`);
      }
      try {
        const res = await fetch(`${this.url}/health/live`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`${this.name} was not live within ${timeoutMs} ms`);
  }

  /** SIGSTOP for `ms`, then SIGCONT: its sockets stay open, nothing it holds is answered meanwhile. */
  async pause(ms: number): Promise<void> {
    if (!this.running()) return;
    this.child!.kill('SIGSTOP');
    await sleep(ms);
    if (this.running()) this.child!.kill('SIGCONT');
  }

  /** SIGKILL, as a node failure or the OOM killer would; resolves once the process is gone. */
  async kill(): Promise<void> {
    if (!this.running()) return;
    this.kills++;
    this.child!.kill('SIGKILL');
    await this.exited;
  }
}
