// A loopback DNS server (UDP and TCP on the same port) serving a zone the test gives as
// records, with per-name faults (slow, never, servfail, refused, malformed, truncated)
// that can be changed while it runs, and a log of every query. Point Node's resolver at
// it with `resolver.setServers(['127.0.0.1:' + dns.port])`.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';
import { waitFor as pollUntil } from './wait.ts';

/** One resource record of the zone; `ttl` defaults to 300 s. */
export type DnsRecord =
  | { name: string; type: 'A' | 'AAAA' | 'CNAME'; data: string; ttl?: number }
  | { name: string; type: 'MX'; data: { preference: number; exchange: string }; ttl?: number }
  | { name: string; type: 'TXT'; data: string | string[]; ttl?: number };

/** Record types the zone can hold. */
export type DnsRecordType = DnsRecord['type'];

/**
 * A fault for queries of one name: `slow` answers after `ms`; `never` does not answer;
 * `servfail`/`refused` answer with that rcode; `malformed` sends bytes that are not a
 * valid DNS message (with the query's id); `truncated` sets TC with no answers over UDP
 * (TCP still answers in full). `times` limits it to the next N matching queries.
 */
export type DnsFault =
  | { mode: 'slow'; ms: number; times?: number }
  | { mode: 'never' | 'servfail' | 'refused' | 'malformed' | 'truncated'; times?: number };

/** One query as received. */
export interface DnsQuery {
  /** Queried name, lower-cased, without the trailing dot. */
  name: string;
  /** Queried type (`A`, `MX`…). */
  type: string;
  /** Transport it came over. */
  transport: 'udp' | 'tcp';
  /** Date.now() when it arrived. */
  at: number;
  /** What the server did: `answer`, `nxdomain`, `nodata`, or the fault mode. */
  outcome: string;
}

/** Options of the DNS server. */
export interface DnsServerOptions {
  /** Loopback address (default 127.0.0.1). */
  host?: '127.0.0.1' | '::1';
  /** TTL of the SOA in negative answers, i.e. how long NXDOMAIN/NODATA may be cached (default 60). */
  negativeTtl?: number;
  /** Faults to start with, by name. */
  faults?: Record<string, DnsFault>;
}

/** A running DNS server. */
export interface DnsServer {
  /** Address it listens on (UDP and TCP). */
  address: string;
  /** Port it listens on (UDP and TCP). */
  port: number;
  /** `host:port` form for `Resolver.setServers()`. */
  server: string;
  /** Every query in order of arrival. */
  queries: DnsQuery[];
  /** How many queries for `name` (and `type`, if given) arrived. */
  count(name: string, type?: string): number;
  /** Replaces the whole zone. */
  setRecords(records: DnsRecord[]): void;
  /** Sets (or with undefined clears) the fault of `name`, for every type or only `type`. */
  setFault(name: string, fault: DnsFault | undefined, type?: string): void;
  /** Clears every fault. */
  clearFaults(): void;
  /** Resolves once `predicate(this)` holds; rejects after `timeoutMs`. */
  waitFor(predicate: (s: DnsServer) => boolean, timeoutMs: number, what?: string): Promise<void>;
  /** Stops both listeners and drops TCP connections; pending slow answers are not sent. */
  close(): Promise<void>;
}

const norm = (name: string): string => name.toLowerCase().replace(/\.$/, '');
const UDP_LIMIT = 512;
const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

/** Starts a DNS server for `records` on loopback (UDP and TCP, same port). */
export async function startDnsServer(records: DnsRecord[], opts: DnsServerOptions = {}): Promise<DnsServer> {
  const host = opts.host ?? '127.0.0.1';
  const negativeTtl = opts.negativeTtl ?? 60;
  let zone: DnsRecord[] = [];
  const faults = new Map<string, { fault: DnsFault; left: number }>();
  const queries: DnsQuery[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const tcpSockets = new Set<net.Socket>();
  let closed = false;

  const setRecords = (rs: DnsRecord[]): void => {
    zone = rs.map((r) => ({ ...r, name: norm(r.name) }));
  };
  setRecords(records);
  const faultKey = (name: string, type?: string): string => `${norm(name)}/${type ?? '*'}`;
  const setFault = (name: string, fault: DnsFault | undefined, type?: string): void => {
    if (fault) faults.set(faultKey(name, type), { fault, left: fault.times ?? Infinity });
    else faults.delete(faultKey(name, type));
  };
  for (const [name, f] of Object.entries(opts.faults ?? {})) setFault(name, f);

  const takeFault = (name: string, type: string): DnsFault | undefined => {
    for (const key of [faultKey(name, type), faultKey(name)]) {
      const f = faults.get(key);
      if (f && f.left > 0) {
        f.left--;
        return f.fault;
      }
    }
    return undefined;
  };

  const toAnswer = (r: DnsRecord): Answer => {
    const ttl = r.ttl ?? 300;
    switch (r.type) {
      case 'MX':
        return { name: r.name, type: 'MX', class: 'IN', ttl, data: { ...r.data } };
      case 'TXT':
        // A copy: dns-packet's encoder replaces the strings of a TXT array with Buffers in place.
        return { name: r.name, type: 'TXT', class: 'IN', ttl, data: Array.isArray(r.data) ? [...r.data] : r.data };
      default:
        return { name: r.name, type: r.type, class: 'IN', ttl, data: r.data };
    }
  };

  const exists = (name: string): boolean => zone.some((r) => r.name === name || r.name.endsWith(`.${name}`));

  const soa = (name: string): Answer => {
    const labels = name.split('.');
    const apex = labels.slice(-2).join('.') || '.';
    return {
      name: apex,
      type: 'SOA',
      class: 'IN',
      ttl: negativeTtl,
      data: { mname: `ns.${apex}`, rname: `hostmaster.${apex}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: negativeTtl },
    };
  };

  /** Builds the answer to one question from the zone, following CNAMEs inside it. */
  const lookup = (q: Question): { rcode: number; answers: Answer[]; authorities: Answer[]; outcome: string } => {
    const qname = norm(q.name);
    const answers: Answer[] = [];
    let cur = qname;
    for (let depth = 0; depth < 8; depth++) {
      const here = zone.filter((r) => r.name === cur);
      const qtype: string = q.type;
      const match = here.filter((r) => r.type === qtype || qtype === 'ANY');
      if (match.length > 0) {
        answers.push(...match.map(toAnswer));
        break;
      }
      const cname = here.find((r) => r.type === 'CNAME');
      if (!cname || cname.type !== 'CNAME' || qtype === 'CNAME') break;
      answers.push(toAnswer(cname));
      cur = norm(cname.data);
    }
    if (answers.length > 0) return { rcode: RCODE.NOERROR, answers, authorities: [], outcome: 'answer' };
    if (!exists(qname)) return { rcode: RCODE.NXDOMAIN, answers, authorities: [soa(qname)], outcome: 'nxdomain' };
    return { rcode: RCODE.NOERROR, answers, authorities: [soa(qname)], outcome: 'nodata' };
  };

  const response = (query: DecodedPacket, rcode: number, answers: Answer[], authorities: Answer[], truncated = false): Packet => ({
    type: 'response',
    id: query.id ?? 0,
    flags:
      dnsPacket.AUTHORITATIVE_ANSWER |
      (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) |
      (truncated ? dnsPacket.TRUNCATED_RESPONSE : 0) |
      rcode,
    questions: query.questions ?? [],
    answers: truncated ? [] : answers,
    authorities: truncated ? [] : authorities,
  });

  /** A header that promises one answer, followed by bytes that are not one. */
  const malformed = (id: number): Buffer => {
    const b = Buffer.from([0, 0, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0, 0xff, 0xfe, 0xfd]);
    b.writeUInt16BE(id, 0);
    return b;
  };

  /** Decides the reply to a query; calls `send` with the bytes (or never). */
  const handle = (msg: Buffer, transport: 'udp' | 'tcp', send: (b: Buffer) => void): void => {
    let query: DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const q = query.questions?.[0];
    if (!q) return;
    const entry: DnsQuery = { name: norm(q.name), type: q.type, transport, at: Date.now(), outcome: '' };
    queries.push(entry);
    const fault = takeFault(entry.name, q.type);
    const answerNormally = (): void => {
      const r = lookup(q);
      entry.outcome += r.outcome;
      let out = dnsPacket.encode(response(query, r.rcode, r.answers, r.authorities));
      if (transport === 'udp' && out.length > UDP_LIMIT) {
        entry.outcome = 'truncated (too big for UDP)';
        out = dnsPacket.encode(response(query, r.rcode, r.answers, r.authorities, true));
      }
      send(out);
    };
    switch (fault?.mode) {
      case undefined:
        answerNormally();
        return;
      case 'slow': {
        entry.outcome = `slow ${fault.ms} ms, then `;
        const t = setTimeout(() => {
          timers.delete(t);
          if (!closed) answerNormally();
        }, fault.ms);
        timers.add(t);
        return;
      }
      case 'never':
        entry.outcome = 'never';
        return;
      case 'servfail':
        entry.outcome = 'servfail';
        send(dnsPacket.encode(response(query, RCODE.SERVFAIL, [], [])));
        return;
      case 'refused':
        entry.outcome = 'refused';
        send(dnsPacket.encode(response(query, RCODE.REFUSED, [], [])));
        return;
      case 'malformed':
        entry.outcome = 'malformed';
        send(malformed(query.id ?? 0));
        return;
      case 'truncated':
        if (transport === 'udp') {
          entry.outcome = 'truncated';
          send(dnsPacket.encode(response(query, RCODE.NOERROR, [], [], true)));
        } else {
          answerNormally();
        }
        return;
    }
  };

  // UDP and TCP on one port: take a free UDP port, then the same TCP port; retry if taken.
  const bindBoth = async (): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number }> => {
    let lastErr: unknown;
    for (let attempt = 0; attempt < 20; attempt++) {
      const udp = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(0, host, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      const port = udp.address().port;
      const tcp = net.createServer();
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(port, host, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
        return { udp, tcp, port };
      } catch (e) {
        lastErr = e;
        udp.close();
      }
    }
    throw new Error(`dns-server: no port free for both UDP and TCP: ${String(lastErr)}`);
  };
  const { udp, tcp, port } = await bindBoth();

  udp.on('message', (msg, rinfo) => {
    handle(msg, 'udp', (b) => {
      if (!closed) udp.send(b, rinfo.port, rinfo.address);
    });
  });
  udp.on('error', () => {
    /* a send to a vanished client; nothing to do */
  });

  tcp.on('connection', (socket) => {
    tcpSockets.add(socket);
    socket.on('close', () => tcpSockets.delete(socket));
    socket.on('error', () => {
      /* client reset */
    });
    let buf: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (let i = 0; i < 1000 && buf.length >= 2; i++) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        handle(msg, 'tcp', (b) => {
          if (socket.destroyed) return;
          const framed = Buffer.alloc(2 + b.length);
          framed.writeUInt16BE(b.length, 0);
          b.copy(framed, 2);
          socket.write(framed);
        });
      }
    });
  });

  const self: DnsServer = {
    address: host,
    port,
    server: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
    queries,
    count: (name, type) => queries.filter((q) => q.name === norm(name) && (type === undefined || q.type === type)).length,
    setRecords,
    setFault,
    clearFaults: () => faults.clear(),
    waitFor(predicate, timeoutMs, what = 'dns-server condition') {
      return pollUntil(() => predicate(self), timeoutMs, what);
    },
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of tcpSockets) s.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
  return self;
}
