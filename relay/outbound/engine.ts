// The pipelined delivery engine: routes a message's recipients to destinations and runs
// each destination's transaction plan (plan.ts: batching, limits, the "too many" rule) on
// pooled connections. Each transaction's settled recipients come back exactly once, as one
// item of `attempt()`, and the engine waits for the caller to take it before it starts the
// next transaction of that destination: the scheduler records them durably in between, so a
// crash can resend only an unrecorded recipient, never a recorded one.
import { promises as dnsp } from 'node:dns';
import { Readable } from 'node:stream';
import net from 'node:net';
import type { RelayMetrics } from '../metrics.ts';
import type { OverQuotaPolicy, Verdict } from '../protocol/classify.ts';
import type { RecipientResult, SessionTlsPolicy, TransactionResult, TxRecipient } from '../protocol/client-session.ts';
import { type Downgrade, downgradeTo7bit } from '../protocol/downgrade.ts';
import { type Reply, makeReply } from '../protocol/reply.ts';
import { type BodySource, type ConnectionTimeouts, SessionFailure, SmtpConnection, type Target } from './connection.ts';
import { type MxResolver, type Route, makeResolver, resolveRoute } from './mx.ts';
import { type Plan, applyResult, nextBatch, startPlan, strand } from './plan.ts';
import { DestinationPool } from './pool.ts';
import { type MxTls, type SmarthostTls, type TlsPlan, mxPlan, smarthostPlan, tlsReportResult } from './tls-plan.ts';
import type { StsPolicy } from '../mta-sts/policy.ts';

/** A message to deliver: envelope, DSN parameters and a body source (re-readable per transaction). */
export interface OutboundMessage {
  id: string;
  from: string;
  recipients: readonly TxRecipient[];
  size: number;
  eightBit?: boolean;
  smtputf8?: boolean;
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  body: BodySource;
}

/** Where MX delivery gets a recipient domain's MTA-STS policy (relay/mta-sts). */
export interface StsPolicySource {
  /** The policy to apply to the domain now, or null if it has none (or none could be had). */
  policyFor(domain: string): Promise<StsPolicy | null>;
}

/** One recipient's result, with the host that gave it. */
export interface DeliveryResult extends RecipientResult {
  host: string | null;
  /** Where it was delivered or tried, as Postfix logs it: host[address]:port. */
  relay?: string;
}

/** Engine settings (the relay config's `delivery` section, in engine units). */
export interface EngineOptions {
  mode: 'smarthost' | 'mx';
  smarthost?: { host: string; port: number; tls: SessionTlsPolicy; auth?: { username: string; password: string } } & Omit<SmarthostTls, 'host' | 'tls'>;
  mxPort: number;
  /** MX delivery's TLS policy. */
  tls: SessionTlsPolicy;
  /** MX delivery: verify certificates under required/implicit (opportunistic only records). */
  tlsVerify: boolean;
  /** MX delivery: CAs trusted for MX certificates (Node's default store plus extras); undefined = the default store. */
  mxCa?: string[];
  /** MX delivery: MTA-STS (RFC 8461) policies; absent = MTA-STS off. */
  mtaSts?: StsPolicySource;
  heloName: string;
  pipelining: boolean;
  chunking: boolean;
  maxRecipientsPerTransaction: number;
  concurrencyPerDestination: number;
  maxMessagesPerConnection: number;
  destinations: Record<string, { maxRecipientsPerTransaction?: number; concurrency?: number }>;
  timeouts: ConnectionTimeouts & { idle: number };
  overQuotaPolicy: OverQuotaPolicy;
  resolver?: MxResolver;
  dnsServers?: readonly string[];
  random?: () => number;
  metrics?: RelayMetrics;
  log?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void };
  chunkSize?: number;
}

/** A permanent routing failure (NXDOMAIN, null MX) as a synthetic reply, for DSNs. */
function routeReply(r: Extract<Route, { kind: 'permanent' }>): Reply {
  return makeReply(r.code, `${r.enhanced} ${r.message}`);
}

/** The delivery engine: one per relay process. */
export class DeliveryEngine {
  private pools = new Map<string, DestinationPool>();
  private learned = new Map<string, number>();
  private resolver: MxResolver;
  private closed = false;

  constructor(private readonly opts: EngineOptions) {
    this.resolver = opts.resolver ?? makeResolver(opts.dnsServers ?? [], Math.min(opts.timeouts.connect, 10000));
  }

  /** Recipient limits learned from "too many recipients" replies, per destination. */
  learnedLimits(): ReadonlyMap<string, number> {
    return this.learned;
  }

  /**
   * Delivers one message: yields, once each, the recipients settled by every transaction
   * (accepted, failed, or deferred to a later attempt), until every recipient was yielded.
   * A destination's next transaction starts only after the caller asked for the next item,
   * so whatever the caller does with an item (record it durably) happens before.
   */
  async *attempt(msg: OutboundMessage): AsyncGenerator<DeliveryResult[]> {
    const groups = new Map<string, TxRecipient[]>();
    for (const r of msg.recipients) {
      const key = this.destinationKey(r.address);
      const g = groups.get(key) ?? [];
      g.push(r);
      groups.set(key, g);
    }
    // Destinations run in parallel; their items meet in one queue. `taken` resolves when the
    // caller comes back for the next item, i.e. has finished with this one.
    const items: { batch: DeliveryResult[]; taken: () => void }[] = [];
    let wake: (() => void) | null = null;
    let running = groups.size;
    let failure: unknown = null;
    const emit = (batch: DeliveryResult[]) => new Promise<void>((taken) => {
      items.push({ batch, taken });
      wake?.();
    });
    for (const [key, rcpts] of groups) {
      void this.deliverGroup(key, msg, rcpts, emit).catch((err: unknown) => { failure ??= err; }).finally(() => {
        running--;
        wake?.();
      });
    }
    while (running > 0 || items.length > 0) {
      const item = items.shift();
      if (!item) {
        await new Promise<void>((r) => { wake = r; });
        wake = null;
        continue;
      }
      try {
        yield item.batch;
      } finally {
        item.taken();
      }
    }
    if (failure) throw failure;
  }

  /** Delivers one message and resolves with exactly one result per recipient, in the given order. */
  async deliver(msg: OutboundMessage): Promise<DeliveryResult[]> {
    const byAddress = new Map<TxRecipient, DeliveryResult>();
    const pending = new Map<string, TxRecipient[]>();
    for (const r of msg.recipients) pending.set(r.address, [...(pending.get(r.address) ?? []), r]);
    for await (const batch of this.attempt(msg)) {
      for (const d of batch) {
        const r = pending.get(d.address)?.shift();
        if (r) byAddress.set(r, d);
      }
    }
    return msg.recipients.map((r) => byAddress.get(r)!);
  }

  /** Closes every pooled connection. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }

  private destinationKey(address: string): string {
    if (this.opts.mode === 'smarthost') return '[smarthost]';
    const at = address.lastIndexOf('@');
    return at < 0 ? '' : address.slice(at + 1).toLowerCase();
  }

  private configuredLimit(key: string): number {
    return this.opts.destinations[key]?.maxRecipientsPerTransaction ?? this.opts.maxRecipientsPerTransaction;
  }

  private learn(key: string, limit: number): void {
    const before = this.learned.get(key);
    if (limit < 1 || (before !== undefined && before <= limit)) return;
    this.learned.set(key, limit);
    this.opts.log?.info({ destination: key, limit }, 'learned recipient limit');
    const m = this.opts.metrics;
    if (m) {
      m.learnedRecipientLimit.set(Math.min(...this.learned.values()));
      m.learnedRecipientLimitDestinations.set(this.learned.size);
    }
  }

  private pool(key: string): DestinationPool {
    let p = this.pools.get(key);
    if (!p) {
      p = new DestinationPool(key, {
        concurrency: this.opts.destinations[key]?.concurrency ?? this.opts.concurrencyPerDestination,
        maxMessagesPerConnection: this.opts.maxMessagesPerConnection,
        idleMs: this.opts.timeouts.idle,
        connect: () => this.connect(key),
      });
      this.pools.set(key, p);
    }
    return p;
  }

  private async route(key: string): Promise<Route> {
    if (this.opts.mode === 'smarthost') {
      const sh = this.opts.smarthost!;
      if (net.isIP(sh.host)) return { kind: 'hosts', hosts: [{ host: sh.host, address: sh.host, port: sh.port, preference: 0 }] };
      try {
        const addrs = this.opts.resolver || (this.opts.dnsServers?.length ?? 0) > 0
          ? [...await this.resolver.resolve4(sh.host).catch(() => []), ...await this.resolver.resolve6(sh.host).catch(() => [])]
          : (await dnsp.lookup(sh.host, { all: true })).map((a) => a.address);
        if (addrs.length === 0) return { kind: 'temporary', message: `smarthost ${sh.host} has no address` };
        return { kind: 'hosts', hosts: addrs.map((address) => ({ host: sh.host, address, port: sh.port, preference: 0 })) };
      } catch (err) {
        return { kind: 'temporary', message: `smarthost ${sh.host}: ${(err as Error).message}` };
      }
    }
    return resolveRoute(key, this.opts.mxPort, this.resolver, this.opts.random);
  }

  /** Opens a ready session to the first host of the route that will talk to us (next MX on connect failure or 4xx greeting). */
  private async connect(key: string): Promise<SmtpConnection> {
    const route = await this.route(key);
    if (route.kind === 'permanent') {
      throw new SessionFailure('route', { status: 'failed', reason: 'permanent' }, routeReply(route), route.message);
    }
    if (route.kind === 'temporary') {
      throw new SessionFailure('route', { status: 'deferred', reason: 'connection', sameConnection: false }, null, route.message);
    }
    const sh = this.opts.mode === 'smarthost' ? this.opts.smarthost : undefined;
    let last: SessionFailure | null = null;
    // RFC 8461 applies to MX delivery only, and not to domain literals.
    const sts = !sh && this.opts.mtaSts && !key.startsWith('[') ? await this.opts.mtaSts.policyFor(key) : null;
    const mxTls: MxTls = { tls: this.opts.tls, verify: this.opts.tlsVerify, ...(this.opts.mxCa ? { ca: this.opts.mxCa } : {}) };
    const attempts = route.hosts.map((h) => ({ h, plan: sh ? smarthostPlan(sh) : mxPlan(mxTls, h.host, sts) }));
    for (let i = 0; i < attempts.length; i++) {
      const { h, plan } = attempts[i]!;
      if ('refuse' in plan) {
        // RFC 8461 §4.1: not a host the domain's enforced policy allows; try the next one.
        last = new SessionFailure('mta-sts', { status: 'deferred', reason: 'tls', sameConnection: false }, null, plan.refuse, '4.7.5');
        this.opts.metrics?.tlsSessions.inc({ policy: 'sts-enforce', result: 'validation-failure' });
        this.opts.log?.warn({ destination: key, host: h.host, address: h.address, stage: 'mta-sts', reason: plan.refuse }, 'connection attempt refused by policy');
        continue;
      }
      const { tls } = plan;
      const target: Target = { host: h.host, address: h.address, port: h.port };
      try {
        return await SmtpConnection.open(target, {
          heloName: this.opts.heloName,
          tls,
          tlsVerify: plan.tlsVerify,
          trust: plan.trust,
          pipelining: this.opts.pipelining,
          chunking: this.opts.chunking,
          overQuotaPolicy: this.opts.overQuotaPolicy,
          auth: sh?.auth,
          timeouts: this.opts.timeouts,
          chunkSize: this.opts.chunkSize,
          observer: this.observer(plan),
        });
      } catch (err) {
        if (!(err instanceof SessionFailure)) throw err;
        last = err;
        this.opts.log?.warn({ destination: key, host: h.host, address: h.address, stage: err.stage, reason: err.message }, 'connection attempt failed');
        // A permanent AUTH failure is about our credentials, not the host: stop here.
        if (err.verdict.status === 'failed') break;
        // Opportunistic TLS that fails in the handshake falls back to plaintext on the same
        // host, as Postfix does at security level "may"; "required" never does, nor does a
        // session with credentials (they never go in cleartext).
        if (tls === 'opportunistic' && err.stage === 'starttls' && !sh?.auth && plan.tlsVerify !== 'enforce') {
          attempts.splice(i + 1, 0, { h, plan: { ...plan, tls: 'none' } });
        }
      }
    }
    throw last ?? new SessionFailure('route', { status: 'deferred', reason: 'connection', sameConnection: false }, null, `no host for ${key}`);
  }

  private observer(plan: TlsPlan) {
    const m = this.opts.metrics;
    if (!m) return undefined;
    return {
      tls: (o: Parameters<typeof tlsReportResult>[1]) => {
        const result = tlsReportResult(plan, o);
        if (result) m.tlsSessions.inc({ policy: plan.label, result });
      },
      reply: (r: Reply) => {
        if (r.command) m.smtpReplies.inc({ command: r.command === 'helo' ? 'ehlo' : r.command === 'quit' ? 'rset' : r.command, code: String(r.code) });
      },
    };
  }

  private async deliverGroup(key: string, msg: OutboundMessage, rcpts: TxRecipient[], emit: (batch: DeliveryResult[]) => Promise<void>): Promise<void> {
    let plan: Plan = startPlan(rcpts, this.configuredLimit(key), this.learned.get(key) ?? null);
    const pool = this.pool(key);
    let conn: SmtpConnection | null = null;
    let progress = true;
    let stopReason: { verdict: Verdict; reply: Reply | null; note: string; status?: string } | null = null;
    let converted: Promise<Downgrade> | null = null;
    const settle = async (settled: DeliveryResult[]) => {
      const m = this.opts.metrics;
      // Deferrals to the schedule are counted once here; put-backs on the connection in observeTransaction.
      if (m) for (const o of settled) if (o.verdict.status === 'deferred') m.retries.inc({ reason: o.verdict.reason });
      if (settled.length > 0) await emit(settled);
    };
    try {
      while (plan.queue.length > 0 && !this.closed) {
        if (!conn || !conn.usable) {
          if (conn) pool.release(conn);
          conn = null;
          if (!progress) break;
          try {
            conn = await pool.acquire();
          } catch (err) {
            const f = err instanceof SessionFailure ? err : null;
            stopReason = {
              verdict: f?.verdict ?? { status: 'deferred', reason: 'connection', sameConnection: false },
              reply: f?.reply ?? null,
              note: f?.message ?? (err as Error).message,
              ...(f?.status ? { status: f.status } : {}),
            };
            // No connection is an attempt that delivered to nobody: an outage must show there.
            this.opts.metrics?.deliveryAttempts.inc({ result: stopReason.verdict.status === 'failed' ? 'failed' : 'deferred' });
            break;
          }
        }
        let body = msg.body;
        let eightBit = msg.eightBit;
        let size = msg.size;
        if (msg.eightBit && !conn.capabilities.eightBitMime) {
          // RFC 6152 §3: convert to 7 bits for a next hop without 8BITMIME, or bounce (5.6.3).
          converted ??= readAll(msg.body).then(downgradeTo7bit);
          const d = await converted;
          if (!d.ok) {
            stopReason = { verdict: { status: 'failed', reason: 'permanent' }, reply: makeReply(554, `5.6.3 The next hop does not support 8BITMIME and the message cannot be converted to 7 bits: ${d.reason}`), note: d.reason };
            break;
          }
          const bytes = d.bytes;
          body = () => Readable.from([bytes]);
          eightBit = false;
          size = bytes.length;
        }
        const batch = nextBatch(plan);
        const started = performance.now();
        const r = await conn.send({
          from: msg.from, recipients: batch.map((q) => q.rcpt), size, eightBit, smtputf8: msg.smtputf8,
          ret: msg.ret, envid: msg.envid,
        }, body);
        this.observeTransaction(r, (performance.now() - started) / 1000);
        const step = applyResult(plan, batch, r);
        plan = step.plan;
        if (step.confirmed !== null) this.learn(key, step.confirmed);
        const t = conn.target;
        await settle(step.settled.map((x) => ({ ...x.result, host: t.host, relay: `${t.host}[${t.address}]:${t.port}` })));
        // A server that refused a RCPT for now (other than "too many", which is retried right
        // here) may be counting recipients per connection: haraka-plugin-limit answers 450
        // to every RCPT past its limit on the connection. Never hand such a connection to
        // the next transaction; the next one opens a fresh connection.
        if (r.recipients.some((x) => x.verdict.status === 'deferred' && !x.verdict.sameConnection && x.rcptReply !== null && x.rcptReply.code >= 400 && x.rcptReply.code < 500)) {
          pool.release(conn, false);
          conn = null;
        }
        if (step.stop) {
          stopReason = { ...step.stop, reply: null };
          break;
        }
        progress = r.recipients.some((x) => x.verdict.status !== 'deferred' || x.verdict.sameConnection);
      }
    } finally {
      if (conn) pool.release(conn);
    }
    const fallback: NonNullable<typeof stopReason> = stopReason ?? {
      verdict: { status: 'deferred', reason: 'connection', sameConnection: false }, reply: null, note: 'not attempted: the connection was lost',
    };
    // A local decision (a TLS check) carries its RFC 3463 status into the results.
    const status = fallback.status ? { status: fallback.status } : {};
    await settle(strand(plan, fallback.verdict, fallback.reply, fallback.note).map((x) => ({ ...x.result, host: null, ...status })));
  }

  private observeTransaction(r: TransactionResult, seconds: number): void {
    const m = this.opts.metrics;
    if (!m) return;
    m.deliveryDuration.observe(seconds);
    let delivered = 0;
    let deferred = 0;
    for (const x of r.recipients) {
      if (x.class552) m.rcpt552.inc({ class: x.class552 });
      if (x.verdict.status === 'accepted') delivered++;
      else if (x.verdict.status === 'deferred') {
        deferred++;
        // Re-queued on this connection: counted here; final deferrals are counted per message.
        if (x.verdict.sameConnection) m.retries.inc({ reason: x.verdict.reason });
      }
    }
    const n = r.recipients.length;
    const result = delivered === n ? 'delivered' : delivered > 0 ? 'partial' : deferred > 0 ? 'deferred' : 'failed';
    if (result === 'partial') m.partialDeliveries.inc();
    m.deliveryAttempts.inc({ result });
  }
}

/** Reads a body source whole (only for the rare message that must be converted to 7 bits). */
async function readAll(source: BodySource): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of source()) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

/** Builds engine options from the relay config's delivery section (seconds -> ms). */
export function engineOptionsFromConfig(
  d: import('../config.ts').RelayConfig['delivery'],
  extra: {
    heloName: string; smarthostCredentials?: { username: string; password: string }; metrics?: RelayMetrics; log?: EngineOptions['log']; resolver?: MxResolver;
    /** Contents of delivery.smarthost.caFile. */
    smarthostCa?: string;
    /** Trust anchors for MX hosts: the default store plus delivery.extraCaFile. */
    mxCa?: string[];
    mtaSts?: StsPolicySource;
  },
): EngineOptions {
  const t = d.timeouts;
  const ms = (s: number) => Math.round(s * 1000);
  return {
    mode: d.mode,
    smarthost: d.smarthost
      ? {
        host: d.smarthost.host, port: d.smarthost.port, tls: d.smarthost.tls,
        auth: extra.smarthostCredentials,
        ...(d.smarthost.serverName !== undefined ? { serverName: d.smarthost.serverName } : {}),
        ...(extra.smarthostCa !== undefined ? { ca: extra.smarthostCa } : {}),
        insecureSkipVerify: d.smarthost.insecureSkipVerify,
      }
      : undefined,
    mxPort: d.mxPort,
    tls: d.tls,
    tlsVerify: d.tlsVerify,
    ...(extra.mxCa ? { mxCa: extra.mxCa } : {}),
    ...(extra.mtaSts ? { mtaSts: extra.mtaSts } : {}),
    heloName: d.heloName ?? extra.heloName,
    pipelining: d.pipelining,
    chunking: d.chunking,
    maxRecipientsPerTransaction: d.maxRecipientsPerTransaction,
    concurrencyPerDestination: d.concurrencyPerDestination,
    maxMessagesPerConnection: d.maxMessagesPerConnection,
    destinations: d.destinations,
    timeouts: {
      connect: ms(t.connect), greeting: ms(t.greeting), command: ms(t.command), dataInit: ms(t.dataInit),
      dataBlock: ms(t.dataBlock), dataTerm: ms(t.dataTerm), idle: ms(t.idle),
    },
    overQuotaPolicy: d.overQuotaPolicy,
    dnsServers: d.dnsServers,
    resolver: extra.resolver,
    metrics: extra.metrics,
    log: extra.log,
  };
}
