// PURE: the PROXY protocol header a load balancer puts in front of a forwarded TCP
// connection (HAProxy's "The PROXY protocol", versions 1 and 2; the spec text is
// haproxy/doc/proxy-protocol.txt). It tells us the client's real address, which we need
// for relayNetworks, the per-IP limits and the Received header. The header is trusted
// only from configured load-balancer networks; that decision, and the socket reading,
// live in adapter.ts. This module turns bytes into a verdict and nothing else.
//
//   v1: "PROXY TCP4|TCP6|UNKNOWN <src> <dst> <sport> <dport>\r\n", at most 107 bytes (§2.1)
//   v2: 12-byte signature, ver/cmd, family/transport, u16 length, addresses, TLVs (§2.2)
import { isIPv4, isIPv6 } from 'node:net';

/** The v2 signature (§2.2): "\r\n\r\n\0\r\nQUIT\n". */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** §2.1: the longest v1 line, CRLF included ("PROXY UNKNOWN" + two IPv6 addresses and ports). */
export const PROXY_V1_MAX = 107;
/** §2.2: 16 fixed bytes, then up to 65535 bytes of addresses and TLVs. */
export const PROXY_V2_MAX = 16 + 0xffff;

/** One end of the proxied connection. */
export interface ProxyEndpoint {
  address: string;
  port: number;
}

/** Why a header was refused; a bounded set, for logs and the refusal metric. */
export type ProxyHeaderProblem =
  | 'not_proxy' // the first bytes are not a PROXY header at all (e.g. the client's own SMTP)
  | 'too_long' // a v1 line without CRLF within 107 bytes
  | 'bad_syntax' // a v1 line that does not follow §2.1
  | 'bad_address' // an address or port that is not valid for its family
  | 'bad_version' // v2 with a version other than 2, or a command other than LOCAL/PROXY
  | 'unsupported_family'; // UDP or UNIX sockets: not an SMTP client

/** What the bytes read so far say. */
export type ProxyParse =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; problem: ProxyHeaderProblem; detail: string }
  /** A proxied connection: use `source` as the client. `length` bytes belong to the header. */
  | { kind: 'proxied'; version: 1 | 2; source: ProxyEndpoint; destination: ProxyEndpoint; length: number }
  /**
   * The proxy speaks for itself (v2 LOCAL, e.g. a health check) or does not know the
   * client (v1 UNKNOWN, v2 AF_UNSPEC): §2.1/§2.2 say to use the connection's own endpoints.
   */
  | { kind: 'local'; version: 1 | 2; length: number };

const invalid = (problem: ProxyHeaderProblem, detail: string): ProxyParse => ({ kind: 'invalid', problem, detail });

/** Whether `buf` is a prefix of `of` or starts with it (so more bytes may still make a header). */
function agreesWith(buf: Buffer, of: Buffer): boolean {
  const n = Math.min(buf.length, of.length);
  return buf.subarray(0, n).equals(of.subarray(0, n));
}

/** Whether the bytes start like a PROXY header of either version (for spotting one from an untrusted client). */
export function looksLikeProxyHeader(buf: Buffer): boolean {
  if (buf.length === 0) return false;
  return agreesWith(buf, V1_PREFIX) || agreesWith(buf, PROXY_V2_SIGNATURE);
}

/** Parses the start of a connection's byte stream as a PROXY header (v1 or v2). */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return { kind: 'incomplete' };
  if (agreesWith(buf, PROXY_V2_SIGNATURE)) return buf.length < PROXY_V2_SIGNATURE.length ? { kind: 'incomplete' } : parseV2(buf);
  if (agreesWith(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? { kind: 'incomplete' } : parseV1(buf);
  return invalid('not_proxy', `starts with ${JSON.stringify(buf.subarray(0, 16).toString('latin1'))}`);
}

const PORT = /^(0|[1-9]\d{0,4})$/;
const port = (s: string): number | null => (PORT.test(s) && Number(s) <= 65535 ? Number(s) : null);

function parseV1(buf: Buffer): ProxyParse {
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end < 0) {
    if (buf.length >= PROXY_V1_MAX) return invalid('too_long', `no CRLF within ${PROXY_V1_MAX} bytes`);
    // §2.1 ends the line with CRLF; a bare LF is not a v1 header.
    return buf.includes(0x0a) ? invalid('bad_syntax', 'line ends without CR') : { kind: 'incomplete' };
  }
  if (end + 2 > PROXY_V1_MAX) return invalid('too_long', `no CRLF within ${PROXY_V1_MAX} bytes`);
  const line = buf.subarray(0, end).toString('latin1');
  const length = end + 2;
  const parts = line.split(' ');
  // §2.1: "PROXY UNKNOWN" may be followed by anything up to the CRLF; the receiver ignores it.
  if (parts[1] === 'UNKNOWN') return { kind: 'local', version: 1, length };
  if (parts.length !== 6) return invalid('bad_syntax', `expected 6 fields, got ${parts.length}: ${JSON.stringify(line)}`);
  const [, proto, src = '', dst = '', sp = '', dp = ''] = parts;
  const isFamily = proto === 'TCP4' ? isIPv4 : proto === 'TCP6' ? isIPv6 : null;
  if (!isFamily) return invalid('bad_syntax', `protocol ${JSON.stringify(proto)} is not TCP4, TCP6 or UNKNOWN`);
  if (!isFamily(src) || !isFamily(dst)) return invalid('bad_address', `${proto} addresses ${JSON.stringify(src)} ${JSON.stringify(dst)}`);
  const sport = port(sp);
  const dport = port(dp);
  if (sport === null || dport === null) return invalid('bad_address', `ports ${JSON.stringify(sp)} ${JSON.stringify(dp)}`);
  return { kind: 'proxied', version: 1, source: { address: src, port: sport }, destination: { address: dst, port: dport }, length };
}

function parseV2(buf: Buffer): ProxyParse {
  if (buf.length < 16) return { kind: 'incomplete' };
  const verCmd = buf[12]!;
  const famProto = buf[13]!;
  const len = buf.readUInt16BE(14);
  if (verCmd >> 4 !== 2) return invalid('bad_version', `version ${verCmd >> 4}`);
  const command = verCmd & 0x0f;
  if (command !== 0 && command !== 1) return invalid('bad_version', `command ${command}`);
  const length = 16 + len;
  if (buf.length < length) return { kind: 'incomplete' };
  // §2.2: LOCAL means the proxy opened the connection itself; the address block is ignored.
  if (command === 0) return { kind: 'local', version: 2, length };
  const body = buf.subarray(16, length);
  switch (famProto) {
    case 0x00: // AF_UNSPEC: the receiver may use the real endpoints.
      return { kind: 'local', version: 2, length };
    case 0x11: // TCP over IPv4: 4 + 4 + 2 + 2
      if (len < 12) return invalid('bad_address', `IPv4 address block of ${len} bytes`);
      return {
        kind: 'proxied', version: 2, length,
        source: { address: ipv4(body.subarray(0, 4)), port: body.readUInt16BE(8) },
        destination: { address: ipv4(body.subarray(4, 8)), port: body.readUInt16BE(10) },
      };
    case 0x21: // TCP over IPv6: 16 + 16 + 2 + 2
      if (len < 36) return invalid('bad_address', `IPv6 address block of ${len} bytes`);
      return {
        kind: 'proxied', version: 2, length,
        source: { address: ipv6(body.subarray(0, 16)), port: body.readUInt16BE(32) },
        destination: { address: ipv6(body.subarray(16, 32)), port: body.readUInt16BE(34) },
      };
    default:
      return invalid('unsupported_family', `family/transport 0x${famProto.toString(16).padStart(2, '0')}`);
  }
}

const ipv4 = (b: Buffer): string => `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;

/** RFC 5952 text of 16 address bytes: lower case, longest run of zero groups (2 or more) as "::", IPv4-mapped in dotted form. */
export function ipv6(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${ipv4(b.subarray(12, 16))}`;
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
