// Routing: which hosts to try for a destination. MX records in preference order
// (RFC 5321 §5.1), equal preferences shuffled, falling back to the domain's own A/AAAA
// ("implicit MX") when there is no MX; a null MX (RFC 7505) or NXDOMAIN is permanent.
import { promises as dns } from 'node:dns';
import net from 'node:net';

/** The DNS lookups routing needs (node's dns.promises.Resolver fits; tests inject a loopback one). */
export interface MxResolver {
  resolveMx(name: string): Promise<{ exchange: string; priority: number }[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  /** TXT records, each a list of strings (MTA-STS discovery, RFC 8461 §3.1). */
  resolveTxt(name: string): Promise<string[][]>;
}

/** A host to try, with the address to connect to. */
export interface RouteHost {
  host: string;
  address: string;
  port: number;
  preference: number;
}

/** The routing decision for a destination. */
export type Route =
  | { kind: 'hosts'; hosts: RouteHost[] }
  | { kind: 'permanent'; code: number; enhanced: string; message: string }
  | { kind: 'temporary'; message: string };

/** Builds a resolver that asks the given servers ("ip" or "ip:port"), or the system's when empty. */
export function makeResolver(servers: readonly string[], timeoutMs = 5000): MxResolver {
  const r = new dns.Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers.length > 0) r.setServers([...servers]);
  return r;
}

const PERMANENT_DNS = new Set(['ENOTFOUND']);
const NO_DATA = new Set(['ENODATA', 'ENOTFOUND']);

async function addresses(resolver: MxResolver, host: string): Promise<{ addrs: string[]; temporary: string | null }> {
  if (net.isIP(host)) return { addrs: [host], temporary: null };
  const results = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
  const addrs: string[] = [];
  let temporary: string | null = null;
  for (const r of results) {
    if (r.status === 'fulfilled') addrs.push(...r.value);
    else {
      const code = (r.reason as NodeJS.ErrnoException).code ?? '';
      if (!NO_DATA.has(code)) temporary = `${host}: ${code || (r.reason as Error).message}`;
    }
  }
  return { addrs, temporary };
}

/** Shuffles hosts of equal preference (RFC 5321 §5.1 SHOULD), keeping the order between preferences. */
export function orderByPreference<T extends { preference: number }>(hosts: T[], random: () => number = Math.random): T[] {
  const keyed = hosts.map((h) => ({ h, k: random() }));
  keyed.sort((a, b) => a.h.preference - b.h.preference || a.k - b.k);
  return keyed.map((x) => x.h);
}

/** Resolves the hosts to try for a recipient domain (or a domain literal like [127.0.0.1]). */
export async function resolveRoute(domain: string, port: number, resolver: MxResolver, random: () => number = Math.random): Promise<Route> {
  const literal = /^\[(?:IPv6:)?([^\]]+)\]$/i.exec(domain);
  if (literal && net.isIP(literal[1]!)) {
    return { kind: 'hosts', hosts: [{ host: literal[1]!, address: literal[1]!, port, preference: 0 }] };
  }
  let mx: { exchange: string; priority: number }[] = [];
  try {
    mx = await resolver.resolveMx(domain);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (PERMANENT_DNS.has(code)) return { kind: 'permanent', code: 550, enhanced: '5.1.2', message: `domain ${domain} does not exist (NXDOMAIN)` };
    if (code !== 'ENODATA') return { kind: 'temporary', message: `MX lookup for ${domain} failed: ${code || (err as Error).message}` };
  }
  // RFC 7505: a single MX of "." means the domain accepts no mail.
  if (mx.length === 1 && (mx[0]!.exchange === '' || mx[0]!.exchange === '.')) {
    return { kind: 'permanent', code: 556, enhanced: '5.1.10', message: `domain ${domain} accepts no mail (null MX, RFC 7505)` };
  }
  const candidates = mx.length > 0
    ? orderByPreference(mx.map((m) => ({ host: m.exchange.replace(/\.$/, ''), preference: m.priority })), random)
    : [{ host: domain, preference: 0 }]; // RFC 5321 §5.1 implicit MX
  const hosts: RouteHost[] = [];
  let temporary: string | null = null;
  for (const c of candidates) {
    const { addrs, temporary: t } = await addresses(resolver, c.host);
    temporary ??= t;
    for (const address of addrs) hosts.push({ host: c.host, address, port, preference: c.preference });
  }
  if (hosts.length > 0) return { kind: 'hosts', hosts };
  if (temporary) return { kind: 'temporary', message: `address lookup failed: ${temporary}` };
  if (mx.length === 0) return { kind: 'permanent', code: 550, enhanced: '5.1.2', message: `domain ${domain} has no MX and no address` };
  return { kind: 'temporary', message: `no MX host of ${domain} has an address` };
}
