// Per-destination connection pool: caps concurrent connections to one destination,
// reuses idle connections (RFC 5321 §4.1.4: a new MAIL after a completed transaction;
// RSET after a failed one is the session's job), closes them after an idle timeout or
// after maxMessagesPerConnection transactions.
import type { SmtpConnection } from './connection.ts';

/** Pool settings for one destination. */
export interface PoolOptions {
  concurrency: number;
  maxMessagesPerConnection: number;
  idleMs: number;
  connect: () => Promise<SmtpConnection>;
}

/** Connections to one destination (a smarthost, or one recipient domain). */
export class DestinationPool {
  private idle: { conn: SmtpConnection; timer: NodeJS.Timeout }[] = [];
  private open = 0; // leased + idle + connecting
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(readonly key: string, private readonly opts: PoolOptions) {}

  /** Open connections (leased, idle or connecting). */
  get size(): number {
    return this.open;
  }

  /** Gets a ready connection: an idle one, a new one if under the cap, or waits for one. */
  async acquire(): Promise<SmtpConnection> {
    for (;;) {
      if (this.closed) throw new Error(`pool ${this.key} is closed`);
      while (this.idle.length > 0) {
        const { conn, timer } = this.idle.pop()!;
        clearTimeout(timer);
        if (conn.usable) return conn;
        this.open--;
        conn.destroy();
      }
      if (this.open < this.opts.concurrency) {
        this.open++;
        try {
          return await this.opts.connect();
        } catch (err) {
          this.open--;
          this.wake();
          throw err;
        }
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Returns a connection: kept idle for reuse while usable and under the per-connection cap, unless `reuse` is false. */
  release(conn: SmtpConnection, reuse = true): void {
    if (reuse && !this.closed && conn.usable && conn.transactions < this.opts.maxMessagesPerConnection) {
      const timer = setTimeout(() => {
        this.idle = this.idle.filter((x) => x.conn !== conn);
        this.open--;
        void conn.quit();
        this.wake();
      }, this.opts.idleMs);
      timer.unref();
      this.idle.push({ conn, timer });
    } else {
      this.open--;
      if (conn.usable) void conn.quit();
      else conn.destroy();
    }
    this.wake();
  }

  private wake(): void {
    const w = this.waiters.shift();
    w?.();
  }

  /** Closes idle connections (QUIT) and refuses new leases. */
  async close(): Promise<void> {
    this.closed = true;
    const idle = this.idle;
    this.idle = [];
    for (const { timer } of idle) clearTimeout(timer);
    this.open -= idle.length;
    await Promise.all(idle.map(({ conn }) => conn.quit()));
    for (const w of this.waiters.splice(0)) w();
  }
}
