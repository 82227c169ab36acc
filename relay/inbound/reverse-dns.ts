// Reverse DNS of inbound clients, for the Received header, with a small cache. A relay's
// clients are a handful of application hosts that connect again and again (often once per
// message); asking the resolver for the same PTR each time cost 4-5% of a worker's CPU with
// a new connection per message. Answers are kept `ttlMs` (the PTR's own TTL is not exposed
// by dns.reverse), failures and timeouts a shorter `errorTtlMs`, at most `maxEntries`
// addresses (the least recently used go first), and concurrent lookups of one address share
// one query.
import dns from 'node:dns';
import type { ReverseResolver } from './adapter.ts';

/** Cache settings. */
export interface ReverseCacheOptions {
  /** How long an answer is reused (default 60 s). */
  ttlMs?: number;
  /** How long a failure is reused (default 10 s). */
  errorTtlMs?: number;
  /** Addresses kept at most (default 10,000). */
  maxEntries?: number;
  /** Clock (ms). */
  now?: () => number;
}

interface Entry {
  err: Error | null;
  hostnames: string[];
  expires: number;
}

/** The system resolver's reverse lookup (c-ares; /etc/hosts first, as dns.reverse does). */
export const systemReverse: ReverseResolver = { reverse: (ip, cb) => dns.reverse(ip, (err, names) => cb(err, names)) };

/** Wraps `base` with the cache; every caller gets its own copy of the names (smtp-server shifts the array). */
export function cachingReverseResolver(base: ReverseResolver, o: ReverseCacheOptions = {}): ReverseResolver & { size(): number } {
  const ttl = o.ttlMs ?? 60_000;
  const errorTtl = o.errorTtlMs ?? 10_000;
  const max = o.maxEntries ?? 10_000;
  const now = o.now ?? Date.now;
  const cache = new Map<string, Entry>();
  const flights = new Map<string, ((err: Error | null, hostnames?: string[]) => void)[]>();
  const answer = (cb: (err: Error | null, hostnames?: string[]) => void, e: Entry): void => cb(e.err, e.err ? undefined : [...e.hostnames]);
  return {
    size: () => cache.size,
    reverse(ip, cb) {
      const hit = cache.get(ip);
      if (hit && hit.expires > now()) {
        cache.delete(ip);
        cache.set(ip, hit); // most recently used
        answer(cb, hit);
        return;
      }
      const waiting = flights.get(ip);
      if (waiting) {
        waiting.push(cb);
        return;
      }
      flights.set(ip, [cb]);
      const done = (err: Error | null, hostnames?: string[]): void => {
        const e: Entry = { err, hostnames: hostnames ?? [], expires: now() + (err ? errorTtl : ttl) };
        cache.delete(ip);
        cache.set(ip, e);
        for (const k of cache.keys()) {
          if (cache.size <= max) break;
          cache.delete(k);
        }
        const cbs = flights.get(ip) ?? [];
        flights.delete(ip);
        for (const c of cbs) answer(c, e);
      };
      try {
        base.reverse(ip, done);
      } catch (err) {
        // dns.reverse throws on an address it cannot parse.
        done(err as Error);
      }
    },
  };
}
