// CIDR parsing and matching for the relay policy (who may relay) and for the
// config schema, which rejects a bad CIDR with a message that names the field.
import { BlockList, isIP } from 'node:net';

/** A parsed network: address family, base address and prefix length. */
export interface Cidr {
  family: 'ipv4' | 'ipv6';
  address: string;
  prefix: number;
}

/** Parses "10.0.0.0/8", "::1/128" or a bare address (a host route); returns null if invalid. */
export function parseCidr(text: string): Cidr | null {
  const [address = '', prefixText, ...rest] = text.trim().split('/');
  if (rest.length > 0) return null;
  const version = isIP(address);
  if (version === 0) return null;
  const max = version === 4 ? 32 : 128;
  if (prefixText === undefined) return { family: version === 4 ? 'ipv4' : 'ipv6', address, prefix: max };
  if (!/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  if (prefix > max) return null;
  return { family: version === 4 ? 'ipv4' : 'ipv6', address, prefix };
}

/** Builds a matcher for a list of CIDRs; IPv4-mapped IPv6 clients (::ffff:a.b.c.d) match IPv4 networks. */
export function networkMatcher(cidrs: readonly string[]): (ip: string) => boolean {
  const list = new BlockList();
  for (const text of cidrs) {
    const c = parseCidr(text);
    if (!c) throw new Error(`invalid CIDR "${text}"`);
    list.addSubnet(c.address, c.prefix, c.family);
  }
  return (ip: string) => {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    const addr = mapped?.[1] ?? ip;
    const family = isIP(addr);
    if (family === 0) return false;
    return list.check(addr, family === 4 ? 'ipv4' : 'ipv6');
  };
}
