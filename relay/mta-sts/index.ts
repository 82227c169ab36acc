// MTA-STS (RFC 8461) for MX delivery: which policy applies to a recipient domain now.
// Discovery by the `_mta-sts.<domain>` TXT record, the policy fetched over verified
// HTTPS (fetch.ts), parsed (policy.ts) and cached for its max_age (cache.ts), refetched
// when the record's id changes. The cache is saved in the spool directory, so a restart
// neither forgets an enforced policy (which would open a downgrade window) nor refetches
// every policy at once.
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { RelayMetrics } from '../metrics.ts';
import type { StsPolicySource } from '../outbound/engine.ts';
import type { MxResolver } from '../outbound/mx.ts';
import { StsPolicyCache, isFresh } from './cache.ts';
import { type StsFetchResult, fetchStsPolicy } from './fetch.ts';
import { type StsPolicy, parseStsPolicy, parseStsRecord } from './policy.ts';

export { type StsPolicy, mxAllowed, mxMatchesPattern, parseStsPolicy, parseStsRecord } from './policy.ts';

/** Settings of the MTA-STS policy source. */
export interface MtaStsOptions {
  /** DNS for the TXT record and the policy host's addresses (the resolver MX lookups use). */
  resolver: Pick<MxResolver, 'resolveTxt' | 'resolve4' | 'resolve6'>;
  /** HTTPS port of the policy hosts (443 in production). */
  port: number;
  /** Deadline of one policy fetch, in ms. */
  fetchTimeoutMs: number;
  /** Policies and negative answers kept. */
  cacheSize: number;
  /** CA certificates trusted for policy hosts (default store plus extras); undefined = the default store. */
  ca?: string[];
  /** File the cache is saved to (in the spool directory); none = memory only. */
  file?: string;
  /** How long a TXT answer is trusted before it is looked at again, in ms (default 5 minutes). */
  recheckMs?: number;
  /** How long after a change the cache file is written (batches a burst of fetches), in ms (default 5 s). */
  saveDelayMs?: number;
  clock?: () => number;
  metrics?: RelayMetrics;
  log?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void };
  /** Replaces the HTTPS fetch (tests of the cache logic only). */
  fetch?: (domain: string) => Promise<StsFetchResult>;
}

const DEFAULT_RECHECK_MS = 5 * 60_000;
const NO_RECORD = new Set(['ENODATA', 'ENOTFOUND']);

/** The MTA-STS policy source the delivery engine asks before connecting to a domain's MX hosts. */
export class MtaStsPolicies implements StsPolicySource {
  private cache: StsPolicyCache;
  private inflight = new Map<string, Promise<StsPolicy | null>>();
  private saveTimer: NodeJS.Timeout | null = null;
  private saving: Promise<void> = Promise.resolve();
  private readonly clock: () => number;

  private constructor(private readonly o: MtaStsOptions) {
    this.cache = new StsPolicyCache(o.cacheSize);
    this.clock = o.clock ?? Date.now;
  }

  /** Creates the source, loading the saved cache if there is one (a damaged file is ignored, with a warning). */
  static async open(o: MtaStsOptions): Promise<MtaStsPolicies> {
    const p = new MtaStsPolicies(o);
    if (o.file) {
      try {
        const n = p.cache.load(JSON.parse(await readFile(o.file, 'utf8')), p.clock());
        if (n > 0) o.log?.info({ policies: n, file: o.file }, 'MTA-STS policies loaded');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') o.log?.warn({ file: o.file, err: (err as Error).message }, 'MTA-STS cache file ignored');
      }
    }
    p.updateGauge();
    return p;
  }

  /** The policy that applies to `domain` now, or null (RFC 8461 §5.1). Never throws. */
  policyFor(domain: string): Promise<StsPolicy | null> {
    const d = domain.toLowerCase().replace(/\.$/, '');
    let p = this.inflight.get(d);
    if (!p) {
      p = this.lookup(d).finally(() => this.inflight.delete(d));
      this.inflight.set(d, p);
    }
    return p;
  }

  /** Writes the cache file now if a write is pending, and stops the timer. */
  async close(): Promise<void> {
    if (this.saveTimer) {
      clearTimeout(this.saveTimer);
      this.saveTimer = null;
      this.save();
    }
    await this.saving;
  }

  private async lookup(domain: string): Promise<StsPolicy | null> {
    const now = this.clock();
    const entry = this.cache.get(domain);
    const cached = entry && isFresh(entry, now) ? entry.policy : null;
    if (entry && now - entry.checkedAt < (this.o.recheckMs ?? DEFAULT_RECHECK_MS)) return cached;

    let records: string[][];
    try {
      records = await this.o.resolver.resolveTxt(`_mta-sts.${domain}`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!NO_RECORD.has(code)) {
        // A DNS failure says nothing: keep what we have, ask again next time.
        this.o.log?.warn({ domain, err: code || (err as Error).message }, 'MTA-STS TXT lookup failed');
        return cached;
      }
      records = [];
    }
    const record = parseStsRecord(records);
    if (record.kind === 'none') {
      // RFC 8461 §3.1: the absence of a usable record does not remove a cached policy.
      this.remember(domain, entry, now);
      return cached;
    }
    if (cached && cached.id === record.id) {
      this.remember(domain, entry, now);
      return cached;
    }
    const fetched = await (this.o.fetch ?? ((d: string) => fetchStsPolicy(d, {
      port: this.o.port, timeoutMs: this.o.fetchTimeoutMs, addresses: (h) => this.addresses(h), ...(this.o.ca ? { ca: this.o.ca } : {}),
    })))(domain);
    if (!fetched.ok) {
      this.o.metrics?.mtaStsFetches.inc({ result: fetched.type });
      this.o.log?.warn({ domain, id: record.id, result: fetched.type, reason: fetched.reason, cachedPolicy: cached?.mode ?? null }, 'MTA-STS policy fetch failed');
      // RFC 8461 §3.3: no policy to be had and none cached: deliver as if the domain had none.
      this.remember(domain, entry, now);
      return cached;
    }
    const parsed = parseStsPolicy(fetched.text, record.id);
    if ('error' in parsed) {
      this.o.metrics?.mtaStsFetches.inc({ result: 'sts-policy-invalid' });
      this.o.log?.warn({ domain, id: record.id, result: 'sts-policy-invalid', reason: parsed.error, cachedPolicy: cached?.mode ?? null }, 'MTA-STS policy invalid');
      this.remember(domain, entry, now);
      return cached;
    }
    this.o.metrics?.mtaStsFetches.inc({ result: 'fetched' });
    this.o.log?.info({ domain, id: parsed.policy.id, mode: parsed.policy.mode, maxAge: parsed.policy.maxAge, mx: parsed.policy.mx }, 'MTA-STS policy fetched');
    this.cache.set(domain, { policy: parsed.policy, fetchedAt: now, checkedAt: now });
    this.updateGauge();
    this.scheduleSave();
    return parsed.policy;
  }

  /** Notes that the TXT record was looked at, keeping the policy (fresh or not) as it was. */
  private remember(domain: string, entry: ReturnType<StsPolicyCache['get']>, now: number): void {
    this.cache.set(domain, entry ? { ...entry, checkedAt: now } : { policy: null, fetchedAt: now, checkedAt: now });
  }

  private async addresses(host: string): Promise<string[]> {
    const r = await Promise.allSettled([this.o.resolver.resolve4(host), this.o.resolver.resolve6(host)]);
    const out = r.flatMap((x) => (x.status === 'fulfilled' ? x.value : []));
    if (out.length === 0 && r[0].status === 'rejected' && !NO_RECORD.has((r[0].reason as NodeJS.ErrnoException).code ?? '')) throw r[0].reason;
    return out;
  }

  private updateGauge(): void {
    const m = this.o.metrics;
    if (!m) return;
    for (const [mode, n] of Object.entries(this.cache.countByMode(this.clock()))) m.mtaStsPolicies.set({ mode }, n);
  }

  private scheduleSave(): void {
    if (!this.o.file || this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      this.save();
    }, this.o.saveDelayMs ?? 5000);
    this.saveTimer.unref();
  }

  /** Writes the cache file (temp file + rename: a crash leaves the old file or the new one, never half of one). */
  private save(): void {
    const file = this.o.file;
    if (!file) return;
    const text = JSON.stringify(this.cache.toFile(this.clock()));
    this.saving = this.saving.then(async () => {
      const tmp = `${file}.tmp`;
      await writeFile(tmp, text);
      await rename(tmp, file);
    }).catch((err: Error) => {
      this.o.log?.warn({ file, err: err.message }, 'MTA-STS cache not saved');
    });
  }
}
