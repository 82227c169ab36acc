// One SPF check (RFC 7208 check_host()) of one identity, with a time budget of its own.
//
// mailauth's `spf()` evaluates the record and counts the RFC 7208 §4.6.4 limits (10
// DNS-querying terms, 2 void lookups; its mx/ptr address lookups get sub-counters). It
// takes any `resolver`; ours is SpfDns behind a per-check wrapper that
//  - refuses every lookup once the check's deadline passed or its session went away,
//  - races each lookup against what is left of the budget,
//  - caps the queries of one check in all (maxQueries), so a record whose mx terms each
//    point at many hosts cannot turn one MAIL FROM into hundreds of queries,
// and the whole evaluation also races the budget, so the check answers on time even if
// mailauth were to wait on something else. After the deadline mailauth's remaining work
// fails at its next lookup, so nothing of an abandoned check lingers.
// A check starts, and resumes after each DNS query, through the verifier's TurnGate, so
// a thousand checks starting or waking at once share the event loop with everything
// else instead of running back to back (turn-gate.ts).
// Per RFC 7208 §4.6.4 the budget running out is a temperror.
import { spf } from 'mailauth/lib/spf/index.js';
import type { SpfDns } from './dns.ts';
import type { TurnGate } from './turn-gate.ts';

/** RFC 7208 §2.6 results. */
export type SpfResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror';

/** Every SPF result, for metric label sets and tests. */
export const SPF_RESULTS: readonly SpfResult[] = ['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror'];

/** Which identity was checked (RFC 7208 §2.3 HELO, §2.4 MAIL FROM). */
export type SpfIdentity = 'mailfrom' | 'helo';

/** The outcome of one check. */
export interface SpfCheckResult {
  identity: SpfIdentity;
  /** The identity as checked: the sender address, or postmaster@<helo> (RFC 7208 §2.4). */
  sender: string;
  /** The domain whose record was evaluated. */
  domain: string;
  /** Client IP address. */
  ip: string;
  result: SpfResult;
  /** Why, in words (for logs and the Authentication-Results comment). */
  comment: string;
  /** Time the check took (ms). */
  ms: number;
  /** DNS lookups the check asked for (cache hits included). */
  lookups: number;
}

/** What one check is about. */
export interface SpfCheckRequest {
  identity: SpfIdentity;
  /** Client IP address. */
  ip: string;
  /** The sender mailbox; for the HELO identity or a null sender: postmaster@<helo>. */
  sender: string;
  /** EHLO/HELO name (for macros and the record). */
  helo: string;
  /** Epoch ms by which the check must answer (default: now + budgetMs). */
  deadline?: number;
  /** Aborted when the session goes away: the check stops at its next lookup. */
  signal?: AbortSignal;
}

/** Options of the checker. */
export interface SpfCheckerOptions {
  /** The shared DNS cache. */
  dns: Pick<SpfDns, 'lookup' | 'peek'>;
  /** Default time budget of one check (ms). */
  budgetMs: number;
  /** Our name, for the result comments (RFC 7208 §9.1 "receiver"). */
  hostname: string;
  /** DNS queries one check may ask for in all (default 100). */
  maxQueries?: number;
  /** Clock (ms). */
  now?: () => number;
  /** Spreads the starts and resumptions of checks over event-loop turns (shared by all checks). */
  gate?: TurnGate;
}

const SPF_RESULT_SET: ReadonlySet<string> = new Set(SPF_RESULTS);

/** An error mailauth turns into the given result (it reads `spfResult` off errors the resolver throws). */
const spfError = (error: 'temperror' | 'permerror', text: string): Error =>
  Object.assign(new Error(text), { code: `SPF_${error.toUpperCase()}`, spfResult: { error, text } });

/** Runs SPF checks; any number at once, sharing nothing but the DNS cache. */
export class SpfChecker {
  private readonly dns: Pick<SpfDns, 'lookup' | 'peek'>;
  private readonly budgetMs: number;
  private readonly hostname: string;
  private readonly maxQueries: number;
  private readonly now: () => number;
  private readonly gate: TurnGate | undefined;
  private running = 0;

  constructor(opts: SpfCheckerOptions) {
    this.dns = opts.dns;
    this.budgetMs = opts.budgetMs;
    this.hostname = opts.hostname;
    this.maxQueries = opts.maxQueries ?? 100;
    this.now = opts.now ?? Date.now;
    this.gate = opts.gate;
  }

  /** Checks now running. */
  active(): number {
    return this.running;
  }

  /** Settles like `p`, once the gate lets the caller through (right away unless a burst is on). */
  private async throughGate<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } finally {
      const wait = this.gate?.pass();
      if (wait) await wait;
    }
  }

  /** Evaluates one identity; never rejects (failures of our own are temperror) and settles by the deadline. */
  async check(req: SpfCheckRequest): Promise<SpfCheckResult> {
    const started = this.now();
    const deadline = req.deadline ?? started + this.budgetMs;
    const domain = (req.sender.split('@').pop() ?? '').toLowerCase();
    let lookups = 0;
    let stopped: Error | undefined;
    const stop = (): Error => {
      stopped ??= req.signal?.aborted
        ? spfError('temperror', 'session closed')
        : spfError('temperror', `SPF check exceeded its ${deadline - started} ms budget`);
      return stopped;
    };
    const resolver = (name: string, type: string): Promise<unknown[]> => {
      if (stopped || req.signal?.aborted) return Promise.reject(stop());
      if (++lookups > this.maxQueries) return Promise.reject(spfError('permerror', `more than ${this.maxQueries} DNS lookups`));
      const left = deadline - this.now();
      if (left <= 0) return Promise.reject(stop());
      // Known answers need no timer (most lookups of a burst of sessions are cache hits).
      try {
        const known = this.dns.peek(name, type);
        if (known) return Promise.resolve(known);
      } catch (err) {
        return Promise.reject(err);
      }
      return this.throughGate(withDeadline(this.dns.lookup(name, type), left, req.signal, stop));
    };
    const result = (r: SpfResult, comment: string): SpfCheckResult => ({
      identity: req.identity, sender: req.sender, domain, ip: req.ip, result: r, comment, ms: this.now() - started, lookups,
    });

    this.running++;
    try {
      await this.throughGate(Promise.resolve());
      const evaluation = spf({
        sender: req.sender, ip: req.ip, helo: req.helo, mta: this.hostname,
        resolver: resolver as unknown as (domain: string, rrtype: string) => Promise<string[]>,
      });
      const out = await withDeadline(evaluation, deadline - this.now(), req.signal, stop);
      const r = out.status.result;
      if (!SPF_RESULT_SET.has(r)) return result('temperror', `unexpected SPF result ${r}`);
      return result(r as SpfResult, out.status.comment ?? r);
    } catch (err) {
      return result('temperror', err instanceof Error ? err.message : String(err));
    } finally {
      this.running--;
    }
  }
}

/** Races `p` against the deadline and the abort signal; cleans up its timer and listener either way. */
function withDeadline<T>(p: Promise<T>, ms: number, signal: AbortSignal | undefined, onStop: () => Error): Promise<T> {
  p.catch(() => {});
  if (ms <= 0 || signal?.aborted) return Promise.reject(onStop());
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onStop()), ms);
    onAbort = () => reject(onStop());
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([p, stop]).finally(() => {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  });
}
