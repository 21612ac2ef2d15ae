import { type ChildProcess } from 'node:child_process';
import { runInThisContext } from 'node:vm';

const CHILDREN = Symbol.for('tawasul.test.killOnExit');

type RealProcess = NodeJS.Process & { [CHILDREN]?: Set<ChildProcess> };

/**
 * SIGKILLs `child` when the test process exits, unless it is gone by then: a failed test must not
 * leave an app or a redis-server running. Jest hands each test file a copy of `process` whose
 * 'exit' never fires, and a module registry of its own: the set and its one hook live on the real
 * process, shared by every file and helper (one listener, not one per file). A jest killed
 * outright runs no hook at all: private-redis' watchdog covers its servers.
 */
export function killOnExit(child: ChildProcess): void {
  const realProcess = runInThisContext('process') as RealProcess;
  let children = realProcess[CHILDREN];
  if (!children) {
    const created = new Set<ChildProcess>();
    realProcess[CHILDREN] = children = created;
    realProcess.once('exit', () => {
      for (const c of created) c.kill('SIGKILL');
    });
  }
  const registry = children;
  registry.add(child);
  child.once('exit', () => registry.delete(child));
}
