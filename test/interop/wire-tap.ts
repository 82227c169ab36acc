// A transparent TCP proxy on loopback that records both directions of every connection,
// byte for byte, between the relay and a next hop. After a run, `sessions()` reads each
// recording back into SMTP transactions: every command matched in order to its reply
// (RFC 2920 §3.1), DATA bodies as sent on the wire (still dot-stuffed), BDAT chunks by
// their byte count. This is how the interop matrix counts transactions and connections
// the same way for every MTA, without trusting either side's own account of it.
import net from 'node:net';

/** One recorded connection: what the client sent and what the server answered. */
export interface TapConnection {
  id: number;
  client: Buffer[];
  server: Buffer[];
  closed: boolean;
}

/** One RCPT as seen on the wire. */
export interface WireRcpt {
  address: string;
  code: number;
}

/** One mail transaction as seen on the wire. */
export interface WireTransaction {
  connection: number;
  from: string;
  mailCode: number;
  rcpts: WireRcpt[];
  /** Reply to the end of data (final dot or BDAT LAST), or to DATA when it was refused; null if none came. */
  dataCode: number | null;
  /** The body as written on the wire (DATA: dot-stuffed, without the final dot line). */
  body: Buffer | null;
}

/** A running tap. */
export interface WireTap {
  port: number;
  connections: TapConnection[];
  /** Parses every recording into transactions, in the order they started. */
  transactions(): WireTransaction[];
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 (port 0) that forwards to 127.0.0.1:targetPort. */
export async function startWireTap(targetPort: number): Promise<WireTap> {
  const connections: TapConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const rec: TapConnection = { id: connections.length + 1, client: [], server: [], closed: false };
    connections.push(rec);
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (b: Buffer) => { rec.client.push(b); upstream.write(b); });
    upstream.on('data', (b: Buffer) => { rec.server.push(b); client.write(b); });
    const end = () => {
      rec.closed = true;
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections,
    transactions: () => connections.flatMap((c) => parseConnection(c)),
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** Splits a server stream into reply codes, one per complete (possibly multi-line) reply. */
function replyCodes(bytes: Buffer): number[] {
  const out: number[] = [];
  for (const line of bytes.toString('latin1').split('\r\n')) {
    const m = /^(\d{3})([ -]?)/.exec(line);
    if (m && m[2] !== '-') out.push(Number(m[1]));
  }
  return out;
}

/** Reads one connection's recording into transactions (commands and replies strictly in order). */
export function parseConnection(c: TapConnection): WireTransaction[] {
  const cli = Buffer.concat(c.client);
  const replies = replyCodes(Buffer.concat(c.server));
  let ri = 1; // replies[0] is the greeting
  let pos = 0;
  const txs: WireTransaction[] = [];
  let tx: WireTransaction | null = null;
  const reply = () => (ri < replies.length ? replies[ri++]! : null);
  while (pos < cli.length) {
    const eol = cli.indexOf('\r\n', pos);
    if (eol < 0) break;
    const line = cli.toString('latin1', pos, eol);
    pos = eol + 2;
    const verb = line.split(' ')[0]!.toUpperCase();
    const bdat = /^BDAT (\d+)( LAST)?$/i.exec(line);
    if (bdat) {
      const n = Number(bdat[1]);
      const chunk = cli.subarray(pos, pos + n);
      pos += n;
      const code = reply();
      if (tx) {
        tx.body = Buffer.concat([tx.body ?? Buffer.alloc(0), chunk]);
        if (bdat[2] || (code !== null && code >= 400)) tx.dataCode = code;
      }
      continue;
    }
    const code = reply();
    if (verb === 'MAIL') {
      tx = { connection: c.id, from: /<([^>]*)>/.exec(line)?.[1] ?? '', mailCode: code ?? 0, rcpts: [], dataCode: null, body: null };
      txs.push(tx);
    } else if (verb === 'RCPT' && tx) {
      tx.rcpts.push({ address: /<([^>]*)>/.exec(line)?.[1] ?? '', code: code ?? 0 });
    } else if (verb === 'DATA') {
      if (code === 354) {
        const end = cli.indexOf('\r\n.\r\n', pos - 2);
        const stop = end < 0 ? cli.length : end + 2;
        if (tx) tx.body = cli.subarray(pos, stop);
        pos = end < 0 ? cli.length : end + 5;
        if (tx) tx.dataCode = reply();
      } else if (tx) {
        tx.dataCode = code;
      }
    } else if (verb === 'RSET' || verb === 'QUIT') {
      tx = null;
    }
  }
  return txs;
}
