import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * Reads a JSON configuration file named by `variable` (relative to the working directory) at
 * start-up. A missing or unparsable file is one line naming the variable, the file and why, thrown
 * through `fail` so each module keeps its own error type.
 */
export function readJsonConfigFile(variable: string, file: string, fail: (message: string) => Error): unknown {
  const path = resolve(process.cwd(), file);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw fail(`${variable}: cannot read ${file} (${path}): ${reason}`);
  }
}
