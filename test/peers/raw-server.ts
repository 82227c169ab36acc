// A raw `net` SMTP peer for what smtp-server cannot do: CHUNKING/BDAT (RFC 3030),
// malformed or hostile replies, and exact byte capture (DATA still dot-stuffed, as on
// the wire). It reads commands line by line, DATA until <CRLF>.<CRLF>, exactly N bytes
// after `BDAT N [LAST]`, and answers through a handler the test supplies; anything the
// handler leaves alone gets the reply of a normal, accepting server.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { delay, waitFor as pollUntil } from './wait.ts';

/** One command as the server parsed it. */
export interface RawCommand {
  /** Upper-cased first word (`MAIL`, `RCPT`, `BDAT`…); `.` for the end of DATA. */
  verb: string;
  /** Everything after the first space, as sent. */
  args: string;
  /** The whole line without its line ending. */
  line: string;
  /** True when the line ended in a bare LF instead of CRLF. */
  bareLf: boolean;
  /** For BDAT: the chunk's bytes; for `.`: the raw DATA bytes (dot-stuffed, with the final `.\r\n`). */
  payload?: Buffer;
  /** Milliseconds since the connection was accepted at which the command's last byte arrived. */
  at: number;
  /** How many replies this connection had written when the command's last byte arrived (pipelining evidence). */
  repliesBefore: number;
}

/** What a handler or hostile helper asks the server to do in answer to a command. */
export interface RawResponse {
  /** Reply: a string (lines split on CRLF/LF, each sent with `lineEnding`), lines, or exact bytes. */
  reply?: string | string[] | Buffer;
  /** Line ending for string replies (default CRLF). */
  lineEnding?: '\r\n' | '\n';
  /** Wait this many ms before writing. */
  delay?: number;
  /** Write the reply in pieces of `chunkSize` bytes, `intervalMs` apart. */
  split?: { chunkSize: number; intervalMs: number };
  /** After the reply, stream `chunk` every `intervalMs` for `durationMs` (a line that never ends). */
  stream?: { chunk: Buffer; intervalMs: number; durationMs: number };
  /** After writing: `true`/`'end'` half-closes (FIN), `'destroy'` drops the socket; either way nothing more is read. */
  close?: boolean | 'end' | 'destroy';
  /** Stop answering: input is still recorded but never parsed or answered again. */
  silent?: boolean;
  /** Override whether a reply to DATA switches to reading the message (default: its last line is 354). */
  enterData?: boolean;
}

/** What a handler may return: a reply, a RawResponse, or nothing for the default behaviour. */
export type RawHandlerResult = string | string[] | Buffer | RawResponse | undefined | null | void;

/** Test-supplied answering logic; return undefined to get `ctx.defaultReply()`. */
export type RawHandler = (cmd: RawCommand, ctx: RawContext) => RawHandlerResult | Promise<RawHandlerResult>;

/** What a handler can see and do. */
export interface RawContext {
  /** The connection the command came on. */
  connection: RawConnection;
  /** The current transaction (from an accepted MAIL until the end of data or RSET), if any. */
  transaction: RawTransaction | undefined;
  /** The reply a normal accepting server (with this server's capabilities) gives to this command. */
  defaultReply(): RawResponse;
  /** Writes bytes out of band, immediately. */
  write(bytes: string | Buffer): void;
}

/** One BDAT chunk as received. */
export interface RawChunk {
  /** Size from the BDAT command. */
  size: number;
  /** Whether it carried LAST. */
  last: boolean;
  /** Exactly the chunk's bytes. */
  bytes: Buffer;
  /** The reply sent for it. */
  reply: string;
}

/** One RCPT and its reply. */
export interface RawRcpt {
  /** Address between the angle brackets (or the raw argument if unparseable). */
  address: string;
  /** ESMTP parameters after the address. */
  params: string;
  /** The whole command line. */
  line: string;
  /** The reply exactly as written. */
  reply: string;
}

/** One mail transaction on a raw connection. */
export interface RawTransaction {
  /** Connection it belongs to. */
  connectionId: number;
  /** MAIL FROM address (undefined if data was entered without an accepted MAIL). */
  from: string | undefined;
  /** MAIL parameters (SIZE=, BODY=, SMTPUTF8…). */
  mailParams: string;
  /** Reply to MAIL exactly as written. */
  mailReply: string;
  /** Every RCPT of the transaction with its reply. */
  rcpts: RawRcpt[];
  /** DATA or BDAT, once data started. */
  method: 'DATA' | 'BDAT' | undefined;
  /** DATA bytes exactly as on the wire: still dot-stuffed, including the terminating `.\r\n`. */
  dataRaw: Buffer | undefined;
  /** The message: unstuffed DATA without the terminator, or the BDAT chunks concatenated. */
  data: Buffer | undefined;
  /** BDAT chunks in order. */
  chunks: RawChunk[];
  /** Reply to the end of data (final dot or BDAT LAST), exactly as written. */
  dataReply: string | undefined;
  /** open → completed (end of data answered), reset (RSET/EHLO/new MAIL), or aborted (connection closed). */
  state: 'open' | 'completed' | 'reset' | 'aborted';
}

/** A reply written by the server, with the command it answered (null: greeting). */
export interface RawExchange {
  /** The command answered, or null for the greeting. */
  command: RawCommand | null;
  /** Bytes written, as latin1 text. */
  reply: string;
}

/** Everything recorded about one raw connection. */
export class RawConnection {
  /** Connection number on this server, from 1. */
  readonly id: number;
  /** Client port. */
  readonly remotePort: number;
  /** Commands in order of parsing. */
  readonly commands: RawCommand[] = [];
  /** Replies with the command each answered. */
  readonly exchanges: RawExchange[] = [];
  /** Transactions in order. */
  readonly transactions: RawTransaction[] = [];
  /** BDAT chunks received outside a transaction. */
  readonly strayChunks: RawChunk[] = [];
  /** True once the socket closed. */
  closed = false;
  /** Who closed first, if known. */
  closedBy: 'client' | 'server' | undefined;
  /** Set when a line exceeded maxLineLength. */
  overlongLine = false;
  private readonly inChunks: Buffer[] = [];
  private readonly outChunks: Buffer[] = [];

  /** Creates the record for connection `id` from port `remotePort`. */
  constructor(id: number, remotePort: number) {
    this.id = id;
    this.remotePort = remotePort;
  }

  /** Every byte received on this connection. */
  get rawIn(): Buffer {
    return Buffer.concat(this.inChunks);
  }

  /** Every byte written on this connection. */
  get rawOut(): Buffer {
    return Buffer.concat(this.outChunks);
  }

  /** Appends received bytes (server internal). */
  recordIn(b: Buffer): void {
    this.inChunks.push(b);
  }

  /** Appends written bytes (server internal). */
  recordOut(b: Buffer): void {
    this.outChunks.push(b);
  }
}

/** EHLO capabilities of the default behaviour. */
export interface RawCapabilities {
  /** PIPELINING (default true). */
  pipelining?: boolean;
  /** CHUNKING (default true); without it the default answers BDAT with 502, after consuming the chunk. */
  chunking?: boolean;
  /** SIZE limit to advertise, or false (default 10485760). */
  size?: number | false;
  /** 8BITMIME (default true). */
  eightBitMime?: boolean;
  /** SMTPUTF8 (default true). */
  smtputf8?: boolean;
  /** ENHANCEDSTATUSCODES (default true); without it default replies carry no enhanced codes. */
  enhancedStatusCodes?: boolean;
  /** DSN (default true). */
  dsn?: boolean;
  /** STARTTLS (default false; the raw server cannot actually do TLS, the default answers 454). */
  starttls?: boolean;
  /** Further EHLO lines, verbatim (e.g. `AUTH PLAIN`). */
  extra?: string[];
}

/** Options of a raw server. */
export interface RawServerOptions {
  /** Hostname in the default greeting and EHLO reply (default `raw-server.test`). */
  hostname?: string;
  /** Greeting instead of `220 <hostname> ESMTP raw-server`; may be hostile (e.g. `hostile.neverAnswer()`). */
  greeting?: string | string[] | Buffer | RawResponse;
  /** Capabilities of the default EHLO reply. */
  capabilities?: RawCapabilities;
  /** Answering logic; undefined results fall back to the default reply. */
  handler?: RawHandler;
  /** Longest command line accepted (default 65536); a longer one gets 500 and the connection is closed. */
  maxLineLength?: number;
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: '127.0.0.1' | '::1';
}

/** A running raw server. */
export interface RawServer {
  /** Address it listens on. */
  host: string;
  /** Port it listens on. */
  port: number;
  /** Connections in order of acceptance. */
  connections: RawConnection[];
  /** All transactions of all connections, in order of their MAIL. */
  transactions: RawTransaction[];
  /** Resolves once `predicate(this)` holds; rejects after `timeoutMs`. */
  waitFor(predicate: (s: RawServer) => boolean, timeoutMs: number, what?: string): Promise<void>;
  /** Destroys every connection and stops listening. */
  close(): Promise<void>;
}

/** Removes dot-stuffing from DATA bytes as sent (RFC 5321 4.5.2): the terminating `.\r\n` is dropped, a leading `.` of each line removed. */
export function unstuff(raw: Buffer): Buffer {
  let body = raw;
  if (body.length >= 3 && body.subarray(body.length - 3).toString('latin1') === '.\r\n' && (body.length === 3 || body.subarray(body.length - 5, body.length - 3).toString('latin1') === '\r\n')) {
    body = body.subarray(0, body.length - 3);
  }
  const out: Buffer[] = [];
  let start = 0;
  // `pos` is always at the start of a line: 0, or just after a CRLF.
  for (let pos = 0; pos < body.length; ) {
    if (body[pos] === 0x2e) {
      out.push(body.subarray(start, pos));
      start = pos + 1;
    }
    const nl = body.indexOf('\r\n', pos);
    if (nl < 0) break;
    pos = nl + 2;
  }
  out.push(body.subarray(start));
  return Buffer.concat(out);
}

/** Hostile behaviours a handler (or the greeting) can return. */
export const hostile = {
  /** Sends text that is not an SMTP reply (default `hello there\r\n`). */
  garbage(text = 'hello there\r\n'): RawResponse {
    return { reply: Buffer.from(text, 'latin1') };
  },
  /** Streams bytes with no CRLF for `durationMs` (default 2000), then drops the connection; stops early if the client closes. */
  endlessLine(opts: { durationMs?: number; intervalMs?: number; chunk?: string; prefix?: string } = {}): RawResponse {
    return {
      reply: Buffer.from(opts.prefix ?? '250-', 'latin1'),
      stream: { chunk: Buffer.from(opts.chunk ?? 'x'.repeat(1024), 'latin1'), intervalMs: opts.intervalMs ?? 5, durationMs: opts.durationMs ?? 2000 },
      close: 'destroy',
    };
  },
  /** Never answers this or any later command; the connection stays open until the client or close() ends it. */
  neverAnswer(): RawResponse {
    return { silent: true };
  },
  /** Writes the first `bytes` of a multi-line reply (default: its first line and half the second), then drops the connection. */
  disconnectMidReply(lines: string[] = ['250-raw-server.test', '250-PIPELINING', '250 8BITMIME'], bytes?: number): RawResponse {
    const full = Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'latin1');
    const first = (lines[0]?.length ?? 0) + 2;
    const cut = bytes ?? first + Math.floor(((lines[1]?.length ?? 0) + 2) / 2);
    return { reply: full.subarray(0, Math.min(cut, full.length)), close: 'destroy' };
  },
  /** Sends the reply with bare LF line endings. */
  bareLf(reply: string | string[]): RawResponse {
    return { reply, lineEnding: '\n' };
  },
  /** Sends the reply in tiny TCP writes (default 1 byte every 2 ms). */
  tinyWrites(reply: string | string[], chunkSize = 1, intervalMs = 2): RawResponse {
    return { reply, split: { chunkSize, intervalMs } };
  },
  /** A multi-line 354 reply; the server still enters data mode. */
  multiline354(): RawResponse {
    return { reply: ['354-Go ahead', '354-Really, go ahead', '354 End data with <CR><LF>.<CR><LF>'] };
  },
};

function encodeReply(r: RawResponse): Buffer {
  const le = r.lineEnding ?? '\r\n';
  if (r.reply === undefined) return Buffer.alloc(0);
  if (Buffer.isBuffer(r.reply)) return r.reply;
  const lines = Array.isArray(r.reply) ? r.reply : r.reply.split(/\r?\n/);
  if (!Array.isArray(r.reply) && lines.at(-1) === '') lines.pop();
  return Buffer.from(lines.map((l) => l + le).join(''), 'latin1');
}

function toResponse(r: RawHandlerResult): RawResponse | undefined {
  if (r === undefined || r === null) return undefined;
  if (typeof r === 'string' || Array.isArray(r) || Buffer.isBuffer(r)) return { reply: r };
  return r;
}

/** The code of the last line of a reply, or undefined when it is not an SMTP reply. */
function finalCode(bytes: Buffer): number | undefined {
  const lines = bytes.toString('latin1').split(/\r?\n/).filter((l) => l !== '');
  const m = /^(\d{3})(?:[ -]|$)/.exec(lines.at(-1) ?? '');
  return m ? Number(m[1]) : undefined;
}

function parsePath(args: string, keyword: string): { address: string; params: string } {
  const m = new RegExp(`^${keyword}:\\s*<([^>]*)>\\s*(.*)$`, 'i').exec(args);
  if (m) return { address: m[1] ?? '', params: m[2] ?? '' };
  return { address: args.replace(new RegExp(`^${keyword}:\\s*`, 'i'), ''), params: '' };
}

interface Caps {
  pipelining: boolean;
  chunking: boolean;
  size: number | false;
  eightBitMime: boolean;
  smtputf8: boolean;
  enhancedStatusCodes: boolean;
  dsn: boolean;
  starttls: boolean;
  extra: string[];
}

/** The reply of a normal accepting server to `cmd` (used when the handler returns undefined). */
export function defaultReply(cmd: RawCommand, ctx: RawContext, hostname = 'raw-server.test', capabilities: RawCapabilities = {}): RawResponse {
  const caps = resolveCaps(capabilities);
  const r = (code: number, enh: string, text: string): string => (caps.enhancedStatusCodes ? `${code} ${enh} ${text}` : `${code} ${text}`);
  const tx = ctx.transaction;
  const accepted = tx?.rcpts.some((x) => x.reply.startsWith('2')) ?? false;
  const queued = (): string => r(250, '2.0.0', `Ok: queued as ${randomBytes(5).toString('hex').toUpperCase()}`);
  switch (cmd.verb) {
    case 'EHLO': {
      const lines = [hostname];
      if (caps.pipelining) lines.push('PIPELINING');
      if (caps.size !== false) lines.push(`SIZE ${caps.size}`);
      if (caps.eightBitMime) lines.push('8BITMIME');
      if (caps.smtputf8) lines.push('SMTPUTF8');
      if (caps.enhancedStatusCodes) lines.push('ENHANCEDSTATUSCODES');
      if (caps.dsn) lines.push('DSN');
      if (caps.chunking) lines.push('CHUNKING');
      if (caps.starttls) lines.push('STARTTLS');
      lines.push(...caps.extra);
      return { reply: lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}`) };
    }
    case 'HELO':
      return { reply: `250 ${hostname}` };
    case 'MAIL':
      if (tx) return { reply: r(503, '5.5.1', 'Error: nested MAIL command') };
      return { reply: r(250, '2.1.0', 'Ok') };
    case 'RCPT':
      if (!tx) return { reply: r(503, '5.5.1', 'Error: need MAIL command') };
      return { reply: r(250, '2.1.5', 'Ok') };
    case 'DATA':
      if (!tx) return { reply: r(503, '5.5.1', 'Error: need MAIL command') };
      if (!accepted) return { reply: r(554, '5.5.1', 'Error: no valid recipients') };
      if (tx.method === 'BDAT') return { reply: r(503, '5.5.1', 'Error: BDAT in progress') };
      return { reply: '354 End data with <CR><LF>.<CR><LF>' };
    case '.':
      return { reply: queued() };
    case 'BDAT': {
      if (!/^\d+(\s+LAST)?\s*$/i.test(cmd.args)) return { reply: r(501, '5.5.4', 'Error: BDAT syntax'), close: true };
      if (!caps.chunking) return { reply: r(502, '5.5.1', 'Error: command not implemented') };
      if (!tx) return { reply: r(503, '5.5.1', 'Error: need MAIL command') };
      if (!accepted) return { reply: r(554, '5.5.1', 'Error: no valid recipients') };
      if (/\sLAST\s*$/i.test(cmd.args)) return { reply: queued() };
      return { reply: r(250, '2.0.0', `Ok: ${cmd.payload?.length ?? 0} octets received`) };
    }
    case 'RSET':
      return { reply: r(250, '2.0.0', 'Ok') };
    case 'NOOP':
      return { reply: r(250, '2.0.0', 'Ok') };
    case 'VRFY':
      return { reply: r(252, '2.0.0', 'Cannot VRFY user') };
    case 'QUIT':
      return { reply: r(221, '2.0.0', 'Bye'), close: true };
    case 'STARTTLS':
      return { reply: r(454, '4.7.0', 'TLS not available') };
    default:
      return { reply: r(500, '5.5.2', 'Error: command not recognized') };
  }
}

function resolveCaps(c: RawCapabilities): Caps {
  return {
    pipelining: c.pipelining ?? true,
    chunking: c.chunking ?? true,
    size: c.size ?? 10485760,
    eightBitMime: c.eightBitMime ?? true,
    smtputf8: c.smtputf8 ?? true,
    enhancedStatusCodes: c.enhancedStatusCodes ?? true,
    dsn: c.dsn ?? true,
    starttls: c.starttls ?? false,
    extra: c.extra ?? [],
  };
}

type Unit =
  | { kind: 'command'; cmd: RawCommand }
  | { kind: 'data-end'; cmd: RawCommand }
  | { kind: 'bdat'; cmd: RawCommand; size: number; last: boolean }
  | { kind: 'overlong' };

/** Starts a raw SMTP server on loopback, port 0. */
export async function startRawServer(opts: RawServerOptions = {}): Promise<RawServer> {
  const host = opts.host ?? '127.0.0.1';
  const hostname = opts.hostname ?? 'raw-server.test';
  const maxLine = opts.maxLineLength ?? 65536;
  const connections: RawConnection[] = [];
  const transactions: RawTransaction[] = [];
  const sockets = new Set<net.Socket>();
  let nextId = 1;

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    const conn = new RawConnection(nextId++, socket.remotePort ?? 0);
    connections.push(conn);
    const started = Date.now();
    let buf: Buffer = Buffer.alloc(0);
    let consumed = 0; // absolute offset of buf[0] in rawIn
    let received = 0;
    let repliesWritten = 0;
    const arrivals: Array<{ end: number; at: number; replies: number }> = [];
    let arrivalIdx = 0;
    let mode: 'command' | 'data' | { size: number; last: boolean; line: string; bareLf: boolean } = 'command';
    let parts: Buffer[] = []; // DATA or BDAT bytes received so far
    let partsLen = 0;
    let tail: Buffer = Buffer.alloc(0);
    let stopped = false;
    let busy = false;
    let current: RawTransaction | undefined;

    const write = (b: Buffer): void => {
      if (b.length === 0 || socket.destroyed || !socket.writable) return;
      conn.recordOut(b);
      socket.write(b);
    };

    const arrivalOf = (endOffset: number): { at: number; replies: number } => {
      while (arrivalIdx < arrivals.length - 1 && (arrivals[arrivalIdx]?.end ?? 0) < endOffset) arrivalIdx++;
      const a = arrivals[arrivalIdx];
      return a ? { at: a.at, replies: a.replies } : { at: Date.now() - started, replies: repliesWritten };
    };

    const take = (n: number): Buffer => {
      const out = buf.subarray(0, n);
      buf = buf.subarray(n);
      consumed += n;
      return out;
    };

    const makeCmd = (line: string, bareLf: boolean, payload?: Buffer): RawCommand => {
      const sp = line.indexOf(' ');
      const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
      const a = arrivalOf(consumed);
      const cmd: RawCommand = { verb, args: sp < 0 ? '' : line.slice(sp + 1), line, bareLf, at: a.at, repliesBefore: a.replies };
      if (payload) cmd.payload = payload;
      return cmd;
    };

    const next = (): Unit | undefined => {
      if (mode === 'command') {
        const nl = buf.indexOf(0x0a);
        if (nl < 0) {
          return buf.length > maxLine ? { kind: 'overlong' } : undefined;
        }
        if (nl > maxLine) return { kind: 'overlong' };
        const rawLine = take(nl + 1);
        const bareLf = !(nl > 0 && rawLine[nl - 1] === 0x0d);
        const line = rawLine.subarray(0, bareLf ? nl : nl - 1).toString('latin1');
        const m = /^BDAT\s+(\d+)(\s+LAST)?\s*$/i.exec(line);
        if (m) {
          mode = { size: Number(m[1]), last: m[2] !== undefined, line, bareLf };
          return next();
        }
        return { kind: 'command', cmd: makeCmd(line, bareLf) };
      }
      if (mode === 'data') {
        if (buf.length === 0) return undefined;
        // Message bytes move from buf to `parts` as they arrive (no quadratic re-buffering
        // of big messages); `tail` keeps the last few bytes, starting as the CRLF that ended
        // the DATA line, so a terminator split across reads is still found.
        const window = Buffer.concat([tail, buf]);
        const i = window.indexOf('\r\n.\r\n');
        const n = i >= 0 ? i + 5 - tail.length : buf.length;
        const part = Buffer.from(take(n));
        parts.push(part);
        if (i < 0) {
          tail = Buffer.concat([tail, part]).subarray(-4);
          return undefined;
        }
        const raw = Buffer.concat(parts);
        parts = [];
        mode = 'command';
        return { kind: 'data-end', cmd: makeCmd('.', false, raw) };
      }
      // BDAT: exactly mode.size bytes, collected across reads.
      const part = take(Math.min(mode.size - partsLen, buf.length));
      if (part.length > 0) parts.push(Buffer.from(part));
      partsLen += part.length;
      if (partsLen < mode.size) return undefined;
      const { size, last, line, bareLf } = mode;
      const bytes = Buffer.concat(parts);
      parts = [];
      partsLen = 0;
      mode = 'command';
      return { kind: 'bdat', cmd: makeCmd(line, bareLf, bytes), size, last };
    };

    const ctxFor = (cmd: RawCommand): RawContext => {
      const ctx: RawContext = {
        connection: conn,
        transaction: current,
        defaultReply: () => defaultReply(cmd, ctx, hostname, opts.capabilities),
        write: (b) => write(typeof b === 'string' ? Buffer.from(b, 'latin1') : b),
      };
      return ctx;
    };

    // Writes a response; returns false when the connection is to be read no further.
    const perform = async (r: RawResponse, answered: RawCommand | null): Promise<boolean> => {
      if (r.delay) await delay(r.delay);
      if (socket.destroyed) return false;
      const bytes = encodeReply(r);
      if (bytes.length > 0) {
        if (r.split) {
          const size = Math.max(1, r.split.chunkSize);
          for (let i = 0; i < bytes.length && !socket.destroyed; i += size) {
            write(bytes.subarray(i, i + size));
            if (i + size < bytes.length) await delay(r.split.intervalMs);
          }
        } else {
          write(bytes);
        }
        repliesWritten++;
      }
      conn.exchanges.push({ command: answered, reply: bytes.toString('latin1') });
      if (r.stream) {
        const until = Date.now() + r.stream.durationMs;
        for (let i = 0; i < 1e6 && Date.now() < until && !socket.destroyed && socket.writable; i++) {
          write(r.stream.chunk);
          await delay(r.stream.intervalMs);
        }
      }
      if (r.close === 'destroy') {
        conn.closedBy ??= 'server';
        socket.destroy();
        return false;
      }
      if (r.close) {
        conn.closedBy ??= 'server';
        socket.end();
        return false;
      }
      return !r.silent;
    };

    const reply = async (cmd: RawCommand): Promise<{ resp: RawResponse; bytes: Buffer }> => {
      const ctx = ctxFor(cmd);
      const resp = toResponse(opts.handler ? await opts.handler(cmd, ctx) : undefined) ?? ctx.defaultReply();
      return { resp, bytes: encodeReply(resp) };
    };

    const handle = async (u: Unit): Promise<boolean> => {
      if (u.kind === 'overlong') {
        conn.overlongLine = true;
        return perform({ reply: '500 5.5.2 Error: line too long', close: 'destroy' }, null);
      }
      const cmd = u.cmd;
      conn.commands.push(cmd);
      if (u.kind === 'data-end') {
        const tx = current;
        if (tx) {
          tx.dataRaw = cmd.payload;
          tx.data = cmd.payload ? unstuff(cmd.payload) : undefined;
        }
        const { resp, bytes } = await reply(cmd);
        if (tx) {
          tx.dataReply = bytes.toString('latin1').replace(/\r?\n$/, '');
          tx.state = 'completed';
          current = undefined;
        }
        return perform(resp, cmd);
      }
      if (u.kind === 'bdat') {
        const tx = current;
        if (tx && tx.method === undefined) tx.method = 'BDAT';
        const { resp, bytes } = await reply(cmd);
        const chunk: RawChunk = { size: u.size, last: u.last, bytes: cmd.payload ?? Buffer.alloc(0), reply: bytes.toString('latin1').replace(/\r?\n$/, '') };
        if (tx && tx.method === 'BDAT') {
          tx.chunks.push(chunk);
          tx.data = Buffer.concat(tx.chunks.map((c) => c.bytes));
          if (u.last) {
            tx.dataReply = chunk.reply;
            tx.state = 'completed';
            current = undefined;
          }
        } else {
          conn.strayChunks.push(chunk);
        }
        return perform(resp, cmd);
      }
      const { resp, bytes } = await reply(cmd);
      const text = bytes.toString('latin1').replace(/\r?\n$/, '');
      const code = finalCode(bytes);
      const ok = code !== undefined && code >= 200 && code < 300;
      switch (cmd.verb) {
        case 'EHLO':
        case 'HELO':
        case 'RSET':
          if (ok && current) {
            current.state = 'reset';
            current = undefined;
          }
          break;
        case 'MAIL':
          if (ok) {
            if (current) current.state = 'reset';
            const p = parsePath(cmd.args, 'FROM');
            current = {
              connectionId: conn.id,
              from: p.address,
              mailParams: p.params,
              mailReply: text,
              rcpts: [],
              method: undefined,
              dataRaw: undefined,
              data: undefined,
              chunks: [],
              dataReply: undefined,
              state: 'open',
            };
            conn.transactions.push(current);
            transactions.push(current);
          }
          break;
        case 'RCPT':
          if (current) {
            const p = parsePath(cmd.args, 'TO');
            current.rcpts.push({ address: p.address, params: p.params, line: cmd.line, reply: text });
          }
          break;
        case 'DATA':
          if (resp.enterData ?? code === 354) {
            mode = 'data';
            parts = [];
            tail = Buffer.from('\r\n');
            if (!current) {
              current = {
                connectionId: conn.id,
                from: undefined,
                mailParams: '',
                mailReply: '',
                rcpts: [],
                method: undefined,
                dataRaw: undefined,
                data: undefined,
                chunks: [],
                dataReply: undefined,
                state: 'open',
              };
              conn.transactions.push(current);
              transactions.push(current);
            }
            current.method = 'DATA';
          }
          break;
        default:
          break;
      }
      return perform(resp, cmd);
    };

    const pump = async (): Promise<void> => {
      if (busy || stopped) return;
      busy = true;
      try {
        for (let i = 0; i < 10_000 && !stopped; i++) {
          const u = next();
          if (!u) return;
          if (!(await handle(u))) stopped = true;
        }
        setImmediate(() => void pump());
      } catch {
        stopped = true;
        socket.destroy();
      } finally {
        busy = false;
      }
    };

    socket.on('data', (chunk: Buffer) => {
      conn.recordIn(chunk);
      received += chunk.length;
      arrivals.push({ end: received, at: Date.now() - started, replies: repliesWritten });
      if (stopped) return;
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      void pump();
    });
    socket.on('end', () => {
      conn.closedBy ??= 'client';
    });
    socket.on('error', () => {
      /* recorded as closed */
    });
    socket.on('close', () => {
      conn.closedBy ??= 'client';
      conn.closed = true;
      sockets.delete(socket);
      if (current && current.state === 'open') current.state = 'aborted';
    });

    // The greeting: it runs before any input is processed.
    busy = true;
    void (async () => {
      try {
        const g = opts.greeting === undefined ? { reply: `220 ${hostname} ESMTP raw-server` } : (toResponse(opts.greeting) ?? {});
        if (!(await perform(g, null))) stopped = true;
      } catch {
        stopped = true;
      } finally {
        busy = false;
      }
      void pump();
    })();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('raw-server: no TCP address');

  const self: RawServer = {
    host,
    port: addr.port,
    connections,
    transactions,
    waitFor(predicate, timeoutMs, what = 'raw-server condition') {
      return pollUntil(() => predicate(self), timeoutMs, what);
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
    },
  };
  return self;
}
