// The DNS layer of SPF checks: every lookup has a timeout, answers are cached (bounded,
// least recently used dropped first), and concurrent misses for one name share one query.
//
// Why we build this ourselves instead of handing mailauth `dns.promises.resolve`
// (seed 004: Exchange 2003 hung with Sender ID on, a race between sessions and the
// filter): a check must never wait on anything but its own lookups, and those must end.
//  - Timeout: c-ares rounds its timeout up (asked for 500 ms with tries: 1, it gave up
//    after ~1 s on node 20 / c-ares 1.34), so each query also races a timer of our own,
//    which cancels the query when it fires.
//  - One c-ares channel per query (nodeDnsBackend): c-ares multiplexes the queries of a
//    channel over shared sockets, and one undecodable answer fails every query pending on
//    that socket (measured: a query for a name answered after 600 ms failed at once with
//    EBADRESP, or later with ETIMEOUT, when garbage arrived for another name meanwhile).
//    With a channel each, garbage, resets and timeouts stay with the query they belong to.
//  - Single-flight: a burst of sessions from one domain makes one query, not one each.
//    The in-flight entry is a promise that never rejects (it settles to a cache entry),
//    removed in a `finally` whatever happened, so a timeout or an error cannot leave a
//    stale flight that later callers would wait on forever.
//  - No shared objects: mailauth writes into the errors it is given (err.spfResult, .rr)
//    and sorts MX answers in place, so every caller gets its own copy of the records or
//    a fresh error with the same code and message.
//  - Negative answers (NXDOMAIN/NODATA, RFC 2308 §5) and failures (SERVFAIL, timeouts:
//    RFC 2308 §7 allows caching them up to 5 minutes) are cached briefly, so a hostile
//    or broken zone is asked once per few seconds, not once per session.
// Nothing here holds a lock: a slow name delays only the callers that asked for it.
import { promises as dnsPromises } from 'node:dns';

/** An answer from the DNS: records as `dns.promises.resolve(name, type)` returns them, and the TTL (s) when known. */
export interface DnsAnswer {
  records: unknown[];
  ttl?: number;
}

/** One uncached DNS query; rejects with an Error whose `code` is a node:dns code (ENOTFOUND, ETIMEOUT…); `signal` cancels it. */
export type DnsBackend = (name: string, type: string, signal: AbortSignal) => Promise<DnsAnswer>;

/** node:dns codes that mean "no such data" (a void lookup in RFC 7208 §4.6.4 terms), not a failure. */
const NEGATIVE_CODES: ReadonlySet<string> = new Set(['ENOTFOUND', 'ENODATA']);

/** A failed lookup, as every caller receives it (its own instance). */
export class DnsLookupError extends Error {
  override readonly name = 'DnsLookupError';
  /** node:dns error code (ENOTFOUND, ENODATA, ETIMEOUT, ESERVFAIL, EBADRESP…). */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }

  /**
   * One without a stack trace: handed out per waiter and per cache hit (NXDOMAIN is
   * common), where a trace says nothing and capturing it was a visible share of the CPU
   * a burst of checks costs.
   */
  static quick(code: string, message: string): DnsLookupError {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return new DnsLookupError(code, message);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

type Entry =
  | { ok: true; records: unknown[]; expiresAt: number }
  | { ok: false; code: string; message: string; expiresAt: number };

/** Options of the SPF DNS cache. */
export interface SpfDnsOptions {
  /** Where queries go (default: nodeDnsBackend). */
  backend: DnsBackend;
  /** Longest wait for one answer. */
  timeoutMs: number;
  /** Entries kept at most. */
  cacheSize: number;
  /** Longest time an answer is kept (a shorter TTL reported by the backend wins). */
  maxTtlMs: number;
  /** How long NXDOMAIN/NODATA is kept (default min(60 s, maxTtlMs)). */
  negativeTtlMs?: number;
  /** How long a failure (timeout, SERVFAIL, bad response) is kept (default min(5 s, maxTtlMs)). */
  errorTtlMs?: number;
  /** Clock (ms) for cache expiry. */
  now?: () => number;
}

/** Counters of the cache, for tests and logs. */
export interface SpfDnsStats {
  /** Answered from the cache. */
  hits: number;
  /** Queries sent to the backend. */
  queries: number;
  /** Callers that joined a query already in flight. */
  coalesced: number;
  /** Queries that hit our timeout. */
  timeouts: number;
}

const normName = (name: string): string => name.toLowerCase().replace(/\.$/, '');

/** A copy a caller may mutate: arrays and plain objects one level deep (TXT chunks, MX records). */
const copyRecords = (records: unknown[]): unknown[] =>
  records.map((r) => (Array.isArray(r) ? [...(r as unknown[])] : r !== null && typeof r === 'object' ? { ...r } : r));

/** Races `p` against a timer; the timer is always cleared, and `p` losing never becomes an unhandled rejection. */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  p.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), Math.max(0, ms));
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** The cached, single-flight, time-bounded DNS resolver SPF checks use. */
export class SpfDns {
  private readonly backend: DnsBackend;
  private readonly timeoutMs: number;
  private readonly cacheSize: number;
  private readonly maxTtlMs: number;
  private readonly negativeTtlMs: number;
  private readonly errorTtlMs: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, Entry>();
  private readonly flights = new Map<string, Promise<Entry>>();
  private readonly counters: SpfDnsStats = { hits: 0, queries: 0, coalesced: 0, timeouts: 0 };

  constructor(opts: SpfDnsOptions) {
    this.backend = opts.backend;
    this.timeoutMs = opts.timeoutMs;
    this.cacheSize = Math.max(1, opts.cacheSize);
    this.maxTtlMs = opts.maxTtlMs;
    this.negativeTtlMs = opts.negativeTtlMs ?? Math.min(60_000, opts.maxTtlMs);
    this.errorTtlMs = opts.errorTtlMs ?? Math.min(5_000, opts.maxTtlMs);
    this.now = opts.now ?? Date.now;
  }

  /**
   * Resolves `name` for `type` like `dns.promises.resolve` (TXT: string[][], MX: {exchange,
   * priority}[], A/AAAA/PTR: string[]), from the cache, by joining a query in flight, or by
   * asking the backend. Rejects with a DnsLookupError; settles within the timeout.
   */
  async lookup(name: string, type: string): Promise<unknown[]> {
    const key = `${type.toUpperCase()} ${normName(name)}`;
    const hit = this.fresh(key);
    if (hit) return this.settle(hit);
    let flight = this.flights.get(key);
    if (flight) {
      this.counters.coalesced++;
    } else {
      // `.finally` runs in a later microtask than this `set`, even if the backend throws
      // synchronously, so the entry is always removed after it was added.
      flight = this.query(normName(name), type.toUpperCase())
        .then((entry) => {
          this.store(key, entry);
          return entry;
        })
        .finally(() => {
          this.flights.delete(key);
        });
      this.flights.set(key, flight);
    }
    return this.settle(await flight);
  }

  /**
   * The cached answer, synchronously: the records, or throws the cached DnsLookupError;
   * undefined on a miss. Lets a caller skip its timers for what is already known.
   */
  peek(name: string, type: string): unknown[] | undefined {
    const hit = this.fresh(`${type.toUpperCase()} ${normName(name)}`);
    return hit ? this.settle(hit) : undefined;
  }

  /** Queries in flight (distinct names being looked up now). */
  inFlight(): number {
    return this.flights.size;
  }

  /** Entries in the cache (expired ones included until they are looked up or pushed out). */
  cached(): number {
    return this.cache.size;
  }

  /** A snapshot of the counters. */
  stats(): SpfDnsStats {
    return { ...this.counters };
  }

  /** One backend query turned into a cache entry; never rejects. */
  private async query(name: string, type: string): Promise<Entry> {
    this.counters.queries++;
    const cancel = new AbortController();
    try {
      const answer = await withTimeout(this.backend(name, type, cancel.signal), this.timeoutMs, () => {
        this.counters.timeouts++;
        cancel.abort();
        return new DnsLookupError('ETIMEOUT', `DNS ${type} ${name}: no answer within ${this.timeoutMs} ms`);
      });
      const ttlMs = answer.ttl === undefined ? this.maxTtlMs : Math.min(this.maxTtlMs, Math.max(0, answer.ttl) * 1000);
      return { ok: true, records: answer.records, expiresAt: this.now() + ttlMs };
    } catch (err) {
      const code = typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'ESERVFAIL';
      const message = err instanceof Error ? err.message : String(err);
      const ttl = NEGATIVE_CODES.has(code) ? this.negativeTtlMs : this.errorTtlMs;
      return { ok: false, code, message, expiresAt: this.now() + ttl };
    }
  }

  /** A live cache entry (counted as a hit and made the most recently used), or undefined. */
  private fresh(key: string): Entry | undefined {
    const cached = this.cache.get(key);
    if (!cached) return undefined;
    this.cache.delete(key);
    if (cached.expiresAt <= this.now()) return undefined;
    // Least recently used goes first: a hit moves the entry to the end.
    this.cache.set(key, cached);
    this.counters.hits++;
    return cached;
  }

  private store(key: string, entry: Entry): void {
    if (entry.expiresAt <= this.now()) return;
    this.cache.delete(key);
    this.cache.set(key, entry);
    for (const oldest of this.cache.keys()) {
      if (this.cache.size <= this.cacheSize) break;
      this.cache.delete(oldest);
    }
  }

  private settle(entry: Entry): unknown[] {
    if (entry.ok) return copyRecords(entry.records);
    throw DnsLookupError.quick(entry.code, entry.message);
  }
}

/** Options of the node:dns backend. */
export interface NodeDnsBackendOptions {
  /** Servers ("ip", "ip:port", "[ipv6]:port"); empty: the system's. */
  servers: readonly string[];
  /** Time a query may take (c-ares' own timeout; the SpfDns timer cancels it at the same time). */
  timeoutMs: number;
}

const minTtl = (rs: { ttl: number }[]): number | undefined => (rs.length === 0 ? undefined : Math.min(...rs.map((r) => r.ttl)));

/**
 * A DnsBackend on node:dns (c-ares: asynchronous, never blocks the event loop), with a
 * `dns.promises.Resolver` of its own for every query (see the header: isolation), which
 * `signal` cancels. Creating one costs ~0.2 ms; with the cache and single-flight in
 * front, queries are few.
 */
export function nodeDnsBackend(opts: NodeDnsBackendOptions): DnsBackend {
  const servers = opts.servers.length > 0 ? [...opts.servers] : dnsPromises.getServers();
  // One try: a resend within the window would not help a slow server (measured: after a
  // resend c-ares dropped the answer to the first packet, and the second came too late).
  // A lost packet makes a temperror; the SMTP client tries again later.
  const timeout = Math.max(1, Math.round(opts.timeoutMs));
  return async (name, type, signal) => {
    const resolver = new dnsPromises.Resolver({ timeout, tries: 1 });
    if (servers.length > 0) resolver.setServers(servers);
    if (signal.aborted) throw new DnsLookupError('ECANCELLED', `DNS ${type} ${name}: cancelled`);
    const cancel = (): void => resolver.cancel();
    signal.addEventListener('abort', cancel, { once: true });
    try {
      return await queryOne(resolver, name, type);
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  };
}

/** One query of `type` on `resolver`, in the shape mailauth expects. */
async function queryOne(resolver: InstanceType<typeof dnsPromises.Resolver>, name: string, type: string): Promise<DnsAnswer> {
  switch (type) {
    case 'A': {
      const rs = await resolver.resolve4(name, { ttl: true });
      return { records: rs.map((r) => r.address), ttl: minTtl(rs) };
    }
    case 'AAAA': {
      const rs = await resolver.resolve6(name, { ttl: true });
      return { records: rs.map((r) => r.address), ttl: minTtl(rs) };
    }
    // Node does not report TTLs for these; SpfDns keeps them for maxTtlMs.
    case 'TXT':
      return { records: await resolver.resolveTxt(name) };
    case 'MX':
      return { records: await resolver.resolveMx(name) };
    case 'PTR':
      return { records: await resolver.resolvePtr(name) };
    default:
      throw new DnsLookupError('ENOTIMP', `DNS type ${type} is not used by SPF`);
  }
}
