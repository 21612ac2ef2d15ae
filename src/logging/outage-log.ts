import { type Logger } from 'pino';

/** While a dependency stays unreachable, a reminder this often (docs/operations.md §1, Connections). */
export const OUTAGE_REMINDER_EVERY_MS = 30_000;

/**
 * Reports an outage of a dependency as three kinds of line at warn and info, rather than one per
 * failed reconnect attempt (a retry every second on every connection would bury everything else;
 * those go to debug): a warning when it starts, a reminder with how long it has lasted every
 * OUTAGE_REMINDER_EVERY_MS, an info line when it ends. Whether it has ended is asked of the owner
 * (`allUp`), which sees every connection.
 */
export class OutageLog {
  private since?: number;
  private lastError = '';
  private failures = 0;
  private reminder?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly logger: Logger,
    private readonly what: string,
    private readonly allUp: () => boolean,
    private readonly reminderEveryMs = OUTAGE_REMINDER_EVERY_MS,
    private readonly now: () => number = () => Date.now(),
  ) {}

  get active(): boolean {
    return this.since !== undefined;
  }

  /** A connection of ours failed: starts an outage unless one is already on. */
  failed(source: string, err: Error): void {
    this.lastError = err.message;
    this.failures++;
    if (this.closed || this.since !== undefined) {
      this.logger.debug({ source, err: err.message }, `${this.what} connection error`);
      return;
    }
    this.since = this.now();
    this.failures = 1;
    this.logger.warn({ source, err: err.message }, `${this.what} connection lost`);
    this.reminder = setInterval(() => this.remind(), this.reminderEveryMs);
    this.reminder.unref();
  }

  /**
   * A connection error seen by someone whose connection state we cannot watch (BullMQ's own
   * connections, a rejected promise): the same outage, told by our connections, so never a line
   * of its own.
   */
  seen(source: string, err: Error): void {
    if (this.since !== undefined) {
      this.lastError = err.message;
      this.failures++;
    }
    this.logger.debug({ source, err: err.message }, `${this.what} connection error`);
  }

  /** A connection of ours is up again: the outage ends when all of them are. */
  check(): void {
    if (this.since === undefined || !this.allUp()) return;
    const downForMs = this.now() - this.since;
    this.stop();
    this.logger.info({ downForMs }, `${this.what} connection restored`);
  }

  /** Shutdown: connections closing on purpose are no outage. */
  close(): void {
    this.closed = true;
    this.stop();
  }

  private remind(): void {
    if (this.since === undefined) return;
    // An up event missed (a connection that ended instead) must not keep an outage open.
    if (this.allUp()) return this.check();
    this.logger.warn(
      { downForMs: this.now() - this.since, failures: this.failures, err: this.lastError },
      `${this.what} still unreachable`,
    );
  }

  private stop(): void {
    clearInterval(this.reminder);
    this.reminder = undefined;
    this.since = undefined;
    this.failures = 0;
  }
}
