// PURE: the MTA-STS policy cache (RFC 8461 §5.1): per domain, the last policy fetched
// and when, plus when the TXT record was last looked at; least recently used entries go
// first when it is full. The clock is passed in; I/O (the file it is saved to) is the
// caller's.
import { type StsPolicy, MAX_MAX_AGE, parseStsPolicy } from './policy.ts';

/** What is known about one domain. */
export interface CacheEntry {
  /** The last valid policy fetched, or null if the domain has none we know of. */
  policy: StsPolicy | null;
  /** When `policy` was fetched (ms epoch); it applies until fetchedAt + maxAge. */
  fetchedAt: number;
  /** When the TXT record was last checked (ms epoch). */
  checkedAt: number;
}

/** The cache as saved to disk. */
export interface CacheFile {
  version: 1;
  entries: { domain: string; policy: StsPolicy; fetchedAt: number }[];
}

/** A bounded LRU cache of MTA-STS knowledge, by domain. */
export class StsPolicyCache {
  private map = new Map<string, CacheEntry>();

  constructor(private readonly max: number) {}

  /** Entries held. */
  get size(): number {
    return this.map.size;
  }

  /** The entry of a domain (marking it recently used). */
  get(domain: string): CacheEntry | undefined {
    const e = this.map.get(domain);
    if (e) {
      this.map.delete(domain);
      this.map.set(domain, e);
    }
    return e;
  }

  /** Stores a domain's entry, dropping the least recently used one beyond the bound. */
  set(domain: string, e: CacheEntry): void {
    this.map.delete(domain);
    this.map.set(domain, e);
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }

  /** Policies held that have not expired at `now`, by mode (for the gauge). */
  countByMode(now: number): Record<StsPolicy['mode'], number> {
    const out = { enforce: 0, testing: 0, none: 0 };
    for (const e of this.map.values()) if (e.policy && isFresh(e, now)) out[e.policy.mode]++;
    return out;
  }

  /** The unexpired policies, oldest use first, for saving. */
  toFile(now: number): CacheFile {
    const entries: CacheFile['entries'] = [];
    for (const [domain, e] of this.map) if (e.policy && isFresh(e, now)) entries.push({ domain, policy: e.policy, fetchedAt: e.fetchedAt });
    return { version: 1, entries };
  }

  /**
   * Loads saved policies, checking each as if fetched again (a damaged or edited file must
   * not smuggle in a bad policy); expired ones are dropped. Their TXT record counts as
   * never checked, so the first delivery after a restart looks at it again.
   */
  load(file: unknown, now: number): number {
    const f = file as Partial<CacheFile> | null;
    if (!f || f.version !== 1 || !Array.isArray(f.entries)) return 0;
    let n = 0;
    for (const raw of f.entries) {
      const e = raw as Partial<CacheFile['entries'][number]>;
      const p = e?.policy;
      if (typeof e?.domain !== 'string' || typeof e.fetchedAt !== 'number' || !p || typeof p.id !== 'string') continue;
      if (typeof p.maxAge !== 'number' || p.maxAge > MAX_MAX_AGE || !Array.isArray(p.mx)) continue;
      const text = ['version: STSv1', `mode: ${p.mode}`, `max_age: ${p.maxAge}`, ...p.mx.map((m) => `mx: ${m}`)].join('\n');
      const parsed = parseStsPolicy(text, p.id);
      if (!('policy' in parsed) || !/^[A-Za-z0-9]{1,32}$/.test(p.id)) continue;
      const entry: CacheEntry = { policy: parsed.policy, fetchedAt: Math.min(e.fetchedAt, now), checkedAt: 0 };
      if (!isFresh(entry, now)) continue;
      this.set(e.domain, entry);
      n++;
    }
    return n;
  }
}

/** True while a policy may still be applied (RFC 8461 §3.2 max_age from its fetch). */
export function isFresh(e: CacheEntry, now: number): boolean {
  return e.policy !== null && now < e.fetchedAt + e.policy.maxAge * 1000;
}
