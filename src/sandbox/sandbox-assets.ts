import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type FastifyReply } from 'fastify';

/**
 * The page's files: beside this module in src/ (ts-node, tests) and copied beside it into dist/ by
 * the build (nest-cli.json `assets`), so one path works for both.
 */
export const SANDBOX_PUBLIC_DIR = join(__dirname, 'public');

const TYPES = {
  'index.html': 'text/html; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'icon.svg': 'image/svg+xml',
} as const;
export type SandboxAsset = keyof typeof TYPES;

/**
 * Nothing but these files, from this origin: a message a patient typed can never become script,
 * markup from elsewhere, or a frame around the page.
 */
export const SANDBOX_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers of every /sandbox answer: the page, its files and its JSON. */
export function sandboxHeaders(reply: FastifyReply): FastifyReply {
  return reply.headers({
    'content-security-policy': SANDBOX_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'cache-control': 'no-cache',
  });
}

/** The page's files, read once at start-up: a build without them fails at boot, not on first view. */
export class SandboxAssets {
  private readonly files = new Map<SandboxAsset, Buffer>();

  constructor(dir = SANDBOX_PUBLIC_DIR) {
    for (const name of Object.keys(TYPES) as SandboxAsset[]) {
      try {
        this.files.set(name, readFileSync(join(dir, name)));
      } catch (err) {
        throw new Error(`the /sandbox page's file ${name} is missing from ${dir}: ${(err as Error).message}`);
      }
    }
  }

  send(reply: FastifyReply, name: SandboxAsset): void {
    void sandboxHeaders(reply).type(TYPES[name]).send(this.files.get(name));
  }
}
