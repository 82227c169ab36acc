// Per-client connection rate limit: a token bucket per client address (IPv6: per /64,
// since one subscriber usually holds a whole /64 and could otherwise rotate addresses).
// PURE apart from its own state; the clock is passed in, so tests need no sleeping.
//
// Memory is bounded: at most `maxKeys` buckets; the least recently used goes first, and a
// bucket that has refilled is the same as no bucket, so dropping it changes nothing.
import { isIPv4, isIPv6 } from 'node:net';

/** Options of the limiter. */
export interface RateLimiterOptions {
  /** Tokens added per second (sustained connections per second). */
  ratePerSecond: number;
  /** Bucket size: connections allowed at once. */
  burst: number;
  /** Buckets kept at most (default 100 000). */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Expands an IPv6 address to its 8 hextets (no zone id). */
function hextets(ip: string): string[] | null {
  const [head = '', tail, ...rest] = ip.split('%')[0]!.split('::');
  if (rest.length > 0) return null;
  const parse = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two hextets.
  const last = t.length > 0 ? t : h;
  if (last.length > 0 && isIPv4(last[last.length - 1]!)) last.splice(last.length - 1, 1, '0', '0');
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  if (fill < 0) return null;
  return [...h, ...Array<string>(fill).fill('0'), ...t].map((x) => x.toLowerCase().replace(/^0+(?=.)/, ''));
}

/** The key a client's connections are counted under: its IPv4 address, or its IPv6 /64. */
export function rateKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!isIPv6(ip)) return ip;
  const h = hextets(ip);
  return h && h.length === 8 ? `${h.slice(0, 4).join(':')}::/64` : ip;
}

/** Token buckets keyed by client; `take` spends one token if there is one. */
export class ConnectionRateLimiter {
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(opts: RateLimiterOptions) {
    this.rate = opts.ratePerSecond;
    this.burst = opts.burst;
    this.maxKeys = opts.maxKeys ?? 100_000;
  }

  /** Spends a token of `ip`'s bucket at time `now` (ms); false when the bucket is empty. */
  take(ip: string, now: number): boolean {
    const key = rateKey(ip);
    const b = this.buckets.get(key);
    const tokens = b ? Math.min(this.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * this.rate) : this.burst;
    if (b) this.buckets.delete(key);
    const ok = tokens >= 1;
    this.buckets.set(key, { tokens: ok ? tokens - 1 : tokens, at: now });
    for (const oldest of this.buckets.keys()) {
      if (this.buckets.size <= this.maxKeys) break;
      this.buckets.delete(oldest);
    }
    return ok;
  }

  /** Buckets held now. */
  size(): number {
    return this.buckets.size;
  }
}
