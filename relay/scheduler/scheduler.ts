// The delivery loop: picks due messages from the spool, hands their due recipients to the
// engine, records every transaction's outcome durably before the next one, and turns
// permanent failures and expiries into DSNs. Nothing that got a 250 is dropped: every
// recipient ends delivered or bounced (or expired, which bounces too).
import type { RelayMetrics } from '../metrics.ts';
import type { DeliveryEngine, DeliveryResult } from '../outbound/engine.ts';
import type { Spool } from '../spool/index.ts';
import type { QueuedMessage, RecipientState, RecipientUpdate, SpoolRecipient } from '../spool/record.ts';
import { buildDsn, dsnBodyType, shouldNotify } from '../dsn/index.ts';
import type { DsnRecipient } from '../dsn/types.ts';
import { type RetryPolicy, attemptsOf, expiredState, isExpired, nextState } from './backoff.ts';
import { deliveryLine, statusOfReply } from './delivery-line.ts';
import { messageIdOf } from '../inbound/message-id.ts';

/** Where a recipient's result came from: the host (for a DSN's Remote-MTA) and host[IP]:port (for the log). */
type Origin = Pick<DeliveryResult, 'host' | 'relay'>;

/** Logger subset the scheduler uses (pino fits). */
export interface SchedulerLog {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
  error(o: object, msg?: string): void;
}

/** Scheduler settings and collaborators. */
export interface SchedulerOptions {
  spool: Spool;
  engine: DeliveryEngine;
  retry: RetryPolicy;
  hostname: string;
  /** Address bounces come from (with a null reverse-path). */
  dsnFrom: string;
  delayNotice: { enabled: boolean; afterSeconds: number };
  /** Messages delivered at once. */
  concurrency: number;
  metrics?: RelayMetrics;
  log?: SchedulerLog;
  clock?: () => number;
  random?: () => number;
  /** Transforms a body before delivery (DKIM signing); identity by default. */
  bodyFor?: (msg: QueuedMessage) => () => AsyncIterable<Uint8Array> | NodeJS.ReadableStream;
}

/** How long a message whose processing threw is left alone before it is tried again. */
export const ERROR_COOLDOWN_MS = 30_000;

/** The reply recorded for recipients an administrator deleted with a bounce (`queue delete --dsn`); its DSN status is 5.0.0. */
export const ADMIN_DELETE_REPLY = 'deleted from the queue by an administrator';

/** An administrator's change could not wait for the delivery of the message in flight. */
export class MessageBusyError extends Error {
  constructor(readonly id: string) {
    super(`${id} is being delivered right now; try again when the attempt is over`);
    this.name = 'MessageBusyError';
  }
}

const silent: SchedulerLog = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Runs the delivery loop over a spool. */
export class Scheduler {
  private inflight = new Map<string, Promise<void>>();
  private cooldown = new Map<string, number>();
  // Messages an administrator's change is working on: never picked meanwhile.
  private locked = new Map<string, number>();
  private running = false;
  private wake: (() => void) | null = null;
  private loopDone: Promise<void> | null = null;
  private readonly clock: () => number;
  private readonly log: SchedulerLog;

  constructor(private readonly o: SchedulerOptions) {
    this.clock = o.clock ?? Date.now;
    this.log = o.log ?? silent;
  }

  /** Messages being delivered right now. */
  get active(): number {
    return this.inflight.size;
  }

  /** Starts the loop. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** Wakes the loop at once (a message was just accepted). */
  kick(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Stops picking new work and waits (at most timeoutMs) for deliveries in flight. */
  async stop(timeoutMs = 60_000): Promise<boolean> {
    this.running = false;
    this.kick();
    await this.loopDone;
    const all = Promise.all(this.inflight.values()).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => { timer = setTimeout(() => r(false), timeoutMs); });
    const done = await Promise.race([all, timeout]);
    clearTimeout(timer);
    return done;
  }

  /** Delivers everything due now and waits for it (tests and `drain`). Returns how many messages ran. */
  async runOnce(): Promise<number> {
    const ids = this.o.spool.due(this.clock(), this.o.concurrency, this.busy());
    await Promise.all(ids.map((id) => this.track(id)));
    return ids.length;
  }

  /** Ids in flight or cooling down after an unexpected error: not picked again yet. */
  private busy(): Set<string> {
    const now = this.clock();
    const out = new Set(this.inflight.keys());
    for (const id of this.locked.keys()) out.add(id);
    for (const [id, until] of this.cooldown) {
      if (until <= now) this.cooldown.delete(id);
      else out.add(id);
    }
    return out;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      // Yield to timers and I/O every round: a wake-up chain made only of microtasks (work
      // that settles without I/O) must never starve the rest of the relay.
      await new Promise<void>((r) => setImmediate(r));
      // stop() may have run during that yield, when there was no wake-up to call yet.
      if (!this.running) break;
      const free = this.o.concurrency - this.inflight.size;
      const ids = free > 0 ? this.o.spool.due(this.clock(), free, this.busy()) : [];
      for (const id of ids) void this.track(id);
      if (ids.length > 0 && this.inflight.size < this.o.concurrency) continue;
      const next = this.o.spool.nextDueAt();
      const wait = next === undefined ? 60_000 : Math.max(5, Math.min(60_000, next - this.clock()));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait);
        t.unref();
        this.wake = () => { clearTimeout(t); resolve(); };
      });
    }
  }

  private track(id: string): Promise<void> {
    const existing = this.inflight.get(id);
    if (existing) return existing;
    const p = this.process(id)
      .catch((err: unknown) => {
        // The message stays queued, but an error that repeats (an unreadable record, a bug)
        // must not turn into a hot loop: leave this message alone for a while.
        this.cooldown.set(id, this.clock() + ERROR_COOLDOWN_MS);
        this.log.error({ queueId: id, err: (err as Error).message, retryInMs: ERROR_COOLDOWN_MS }, 'delivery of message failed; it stays queued');
      })
      .finally(() => {
        this.inflight.delete(id);
        this.kick();
      });
    this.inflight.set(id, p);
    return p;
  }

  /** True while a delivery of the message runs. */
  delivering(id: string): boolean {
    return this.inflight.has(id);
  }

  /**
   * Runs an administrator's change to one message (queue hold, release, retry, delete) while
   * no delivery of it runs: the loop does not pick it meanwhile, and a delivery in flight is
   * waited for, up to waitMs (then MessageBusyError), so its results are never recorded on
   * top of the change (a delete then a late "delivered" would be refused by the spool).
   */
  async exclusive<T>(id: string, run: () => Promise<T>, waitMs = 30_000): Promise<T> {
    this.locked.set(id, (this.locked.get(id) ?? 0) + 1);
    try {
      const running = this.inflight.get(id);
      if (running !== undefined) {
        let timer: NodeJS.Timeout | undefined;
        const done = await Promise.race([running.then(() => true), new Promise<boolean>((r) => { timer = setTimeout(() => r(false), waitMs); })]);
        clearTimeout(timer);
        if (!done) throw new MessageBusyError(id);
      }
      return await run();
    } finally {
      const n = (this.locked.get(id) ?? 1) - 1;
      if (n <= 0) this.locked.delete(id);
      else this.locked.set(id, n);
      this.kick();
    }
  }

  /**
   * `queue retry` (Postfix's flush): every deferred recipient of the message (of one
   * destination, if given) is due now. Returns what it did; call inside exclusive().
   */
  async retryNow(id: string, destination?: (address: string) => boolean): Promise<'retrying' | 'held' | 'nothing_deferred'> {
    const msg = await this.o.spool.load(id);
    if (msg.heldAt !== undefined) return 'held';
    const now = this.clock();
    const updates: RecipientUpdate[] = [];
    for (const r of msg.recipients) {
      if (r.state.state === 'deferred' && (destination === undefined || destination(r.address))) {
        updates.push({ address: r.address, state: { ...r.state, nextAttemptAt: now } });
      }
    }
    const pendingNow = msg.recipients.some((r) => r.state.state === 'pending' && (destination === undefined || destination(r.address)));
    if (updates.length === 0) return pendingNow ? 'retrying' : 'nothing_deferred';
    await this.o.spool.updateRecipients(id, updates);
    this.cooldown.delete(id);
    return 'retrying';
  }

  /**
   * `queue delete --dsn`: every recipient not yet delivered or failed fails as deleted by an
   * administrator, through the same path as any permanent failure (DSNs first, as each
   * recipient's NOTIFY asks; then the states), so the message completes. Call inside exclusive().
   */
  async failAll(id: string): Promise<number> {
    const msg = await this.o.spool.load(id);
    const now = this.clock();
    const updates: RecipientUpdate[] = msg.recipients
      .filter((r) => r.state.state === 'pending' || r.state.state === 'deferred')
      .map((r) => ({ address: r.address, state: { state: 'failed', at: now, reply: ADMIN_DELETE_REPLY, attempts: attemptsOf(r.state), reason: 'permanent' } }));
    if (updates.length > 0) await this.settle(msg, updates, new Map());
    return updates.length;
  }

  private async process(id: string): Promise<void> {
    const { spool, engine } = this.o;
    const msg = await spool.load(id);
    const now = this.clock();
    const due = msg.recipients.filter((r) => r.state.state === 'pending' || (r.state.state === 'deferred' && r.state.nextAttemptAt <= now));
    if (due.length === 0) return;

    if (isExpired(msg.receivedAt, now, this.o.retry)) {
      const updates = due.map((r) => ({
        address: r.address,
        state: expiredState(attemptsOf(r.state), now, r.state.state === 'deferred' ? r.state.lastReply : 'never attempted'),
      }));
      await this.settle(msg, updates, new Map());
      return;
    }

    const byAddress = new Map(due.map((r) => [r.address, r]));
    const hosts = new Map<string, Origin>();
    // Recipients deferred in this attempt are retried together (one jitter draw per attempt,
    // and every later deferral takes the first one's time): per-recipient jitter would split
    // one message into one transaction per recipient at the next attempt.
    const draw = (this.o.random ?? Math.random)();
    let retryAt: number | null = null;
    const deliveries = engine.attempt({
      id: msg.id,
      from: msg.from,
      recipients: due.map((r) => ({ address: r.address, notify: r.notify, orcpt: r.orcpt })),
      size: msg.size,
      eightBit: msg.bodyType === '8BITMIME',
      smtputf8: msg.smtputf8,
      ret: msg.ret,
      envid: msg.envid,
      body: this.o.bodyFor ? this.o.bodyFor(msg) as () => AsyncIterable<Uint8Array> : () => spool.openBody(id),
    });
    // Each transaction's results come once; they are recorded before the engine goes on.
    for await (const results of deliveries) {
      const t = this.clock();
      const updates: RecipientUpdate[] = [];
      for (const r of results) {
        const prev = byAddress.get(r.address);
        if (!prev) continue;
        byAddress.delete(r.address);
        hosts.set(r.address, r);
        let state = nextState(prev.state, r, msg.receivedAt, t, this.o.retry, () => draw);
        if (state.state === 'deferred') {
          if (retryAt === null) retryAt = state.nextAttemptAt;
          else state = { ...state, nextAttemptAt: retryAt };
        }
        updates.push({ address: r.address, state });
      }
      if (updates.length > 0) await this.settle(msg, updates, hosts);
    }
  }

  /**
   * Sends the DSNs an update calls for FIRST (a crash then means a duplicate notice, never a
   * lost one), then records the states durably, then counts them.
   */
  private async settle(msg: QueuedMessage, updates: RecipientUpdate[], hosts: Map<string, Origin>): Promise<void> {
    const now = this.clock();
    const rcpt = new Map(msg.recipients.map((r) => [r.address, r]));
    const failed: DsnRecipient[] = [];
    const delayed: DsnRecipient[] = [];
    for (const u of updates) {
      const r = rcpt.get(u.address)!;
      const host = hosts.get(u.address)?.host;
      const remoteMta = host ? `dns; ${host}` : undefined;
      if (u.state.state === 'failed' && shouldNotify(r.notify, 'failed')) {
        failed.push(dsnRecipient(r, u.state, 'failed', remoteMta));
      } else if (
        u.state.state === 'deferred' && this.o.delayNotice.enabled && !r.delayNotified &&
        now - msg.receivedAt >= this.o.delayNotice.afterSeconds * 1000 && shouldNotify(r.notify, 'delayed')
      ) {
        delayed.push({ ...dsnRecipient(r, u.state, 'delayed', remoteMta), willRetryUntil: msg.receivedAt + this.o.retry.maxAge * 1000 });
        u.delayNotified = true;
      }
    }
    // RFC 5321 §4.5.5 / §6.1: never bounce a bounce (null reverse-path).
    if (msg.from !== '') {
      if (failed.length > 0) await this.sendDsn(msg, failed);
      if (delayed.length > 0) await this.sendDsn(msg, delayed);
    }
    const result = await this.o.spool.updateRecipients(msg.id, updates);
    this.observe(msg, updates, now);
    for (const u of updates) {
      const line = deliveryLine(msg, u, hosts.get(u.address)?.relay, now);
      if (line.status === 'sent') this.log.info(line, 'delivery outcome');
      else this.log.warn(line, 'delivery outcome');
    }
    if (result.completed) this.log.info({ queueId: msg.id }, 'message complete, removed from spool');
  }

  private async sendDsn(msg: QueuedMessage, recipients: DsnRecipient[]): Promise<void> {
    const kind = recipients[0]!.action === 'delayed' ? 'delay' : 'bounce';
    const bytes = await buildDsn({
      reportingMta: this.o.hostname,
      from: this.o.dsnFrom.includes('@') ? this.o.dsnFrom : `${this.o.dsnFrom}@${this.o.hostname}`,
      to: msg.from,
      envid: msg.envid,
      arrivalDate: msg.receivedAt,
      recipients,
      ret: msg.ret ?? 'HDRS',
      originalMessage: this.o.spool.openBody(msg.id),
      now: this.clock(),
    });
    const messageId = messageIdOf(bytes);
    const dsn = await this.o.spool.accept(
      { from: '', recipients: [{ address: msg.from }], receivedAt: this.clock(), bodyType: dsnBodyType(bytes), ...(messageId ? { messageId } : {}) },
      bytes,
    );
    this.o.metrics?.dsnSent.inc({ type: kind });
    this.log.info({ queueId: msg.id, dsnQueueId: dsn.id, type: kind, to: msg.from, recipients: recipients.length }, 'DSN queued');
    this.kick();
  }

  private observe(msg: QueuedMessage, updates: RecipientUpdate[], now: number): void {
    const m = this.o.metrics;
    if (!m) return;
    // Bounce notices (null reverse-path, RFC 5321 §4.5.5) are counted apart: a notice that
    // bounces is not a second bounce of the user's mail (the bounce-ratio alert reads
    // mailrelay_recipients_total).
    const counter = msg.from === '' ? m.dsnRecipients : m.recipients;
    for (const u of updates) {
      const s = u.state;
      if (s.state === 'delivered') counter.inc({ outcome: 'delivered' });
      else if (s.state === 'deferred') counter.inc({ outcome: 'deferred' });
      else if (s.state === 'failed') counter.inc({ outcome: s.reason === 'expired' ? 'expired' : 'bounced' });
      if (s.state === 'delivered' || s.state === 'failed') m.queueResidence.observe((now - msg.receivedAt) / 1000);
    }
  }
}

function dsnRecipient(r: SpoolRecipient, s: RecipientState, action: 'failed' | 'delayed', remoteMta: string | undefined): DsnRecipient {
  const reply = s.state === 'failed' ? s.reply : s.state === 'deferred' ? s.lastReply : '';
  // The status is the reply's enhanced code when it has one, else derived from its class.
  const status = statusOfReply(reply, action === 'failed' ? '5.0.0' : '4.0.0');
  return {
    address: r.address,
    orcpt: r.orcpt,
    action,
    status: s.state === 'failed' && s.reason === 'expired' ? '4.4.7' : status,
    remoteMta,
    diagnostic: reply,
    lastAttemptAt: 'at' in s ? s.at : undefined,
  };
}
