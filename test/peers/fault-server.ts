// A scriptable, fault-injecting SMTP server for scenario tests, built on smtp-server.
//
// Behaviour is chosen per test (options) and per recipient address (a grammar in the
// local part, in the style of KumoMTA's maildir sink), so a scenario reads like the bug
// report it prevents: "RCPT 552-quota@… is rejected, the other recipients still get
// exactly one copy". Every reply the grammar produces goes out on the wire byte for byte
// as written here (see `exactReply`), and everything the server received is recorded.
//
// smtp-server dot-unstuffs DATA before we see it; to prove on the wire what a client
// sent, use raw-server.ts instead.
import { randomBytes } from 'node:crypto';
import { SMTPServer } from 'smtp-server';
import type {
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerAuthenticationResponse,
  SMTPServerDataStream,
  SMTPServerError,
  SMTPServerOptions,
  SMTPServerSession,
} from 'smtp-server';
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { waitFor as pollUntil } from './wait.ts';

/** Options of a fault server: what it advertises and how it misbehaves for every transaction. */
export interface FaultServerOptions {
  /** Accept at most this many recipients per transaction; further RCPTs get `limitReply`. Checked before the address grammar. */
  maxRecipientsPerTransaction?: number;
  /** Full reply line for RCPTs beyond the limit, sent verbatim (default `452 4.5.3 Too many recipients`, or `452 Too many recipients` without enhanced codes). */
  limitReply?: string;
  /** Advertise PIPELINING (default true). smtp-server processes pipelined commands either way. */
  pipelining?: boolean;
  /** Advertise ENHANCEDSTATUSCODES and put enhanced codes in replies (default true). When false no reply carries one. */
  enhancedStatusCodes?: boolean;
  /** Advertise 8BITMIME (default true). */
  eightBitMime?: boolean;
  /** Advertise SMTPUTF8 (default true). */
  smtputf8?: boolean;
  /** Advertise DSN (default false). */
  dsn?: boolean;
  /** Advertise SIZE with this limit and reject larger messages (MAIL SIZE= or the body) with 552. */
  size?: number;
  /** Delay every reply (greeting, each command, the final dot) by this many ms. */
  slowMs?: number;
  /** Reply to the final dot of every transaction, verbatim (e.g. `554 5.6.0 Content rejected`). A `data-<code>-` recipient overrides it. */
  dataReply?: string;
  /** Close the socket after receiving every message body, without replying to the final dot. */
  dropAfterData?: boolean;
  /** Full greeting line(s), verbatim (e.g. `554 5.7.1 No SMTP service here`); a non-220 greeting is followed by closing the connection. */
  greeting?: string;
  /** Offer STARTTLS with this key and certificate (absent: no STARTTLS). */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** With `tls`: TLS from the first byte (RFC 8314 implicit TLS, as on port 465) instead of STARTTLS. */
  implicitTls?: boolean;
  /** Require AUTH PLAIN/LOGIN with these credentials before MAIL. Over plaintext only when `tls` is not set. */
  auth?: { username: string; password: string };
  /** Text after `ESMTP` in the default greeting. */
  banner?: string;
  /** Hostname in the greeting and EHLO reply (default `fault-server.test`). */
  hostname?: string;
  /** Per-recipient override: return a full reply line to send verbatim, or undefined to apply the address grammar. */
  rcptReply?: (address: string, tx: FaultTransaction) => string | undefined;
  /** Idle timeout of a connection in ms (default 30000). */
  socketTimeoutMs?: number;
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: '127.0.0.1' | '::1';
}

/** A recipient refused at RCPT, with the exact reply line(s) sent. */
export interface RejectedRcpt {
  /** Address from RCPT TO, as sent by the client. */
  address: string;
  /** Reply exactly as written on the wire (lines joined with CRLF, without the final CRLF). */
  reply: string;
}

/** One mail transaction: from an accepted MAIL to the reply to the final dot (or the connection's end). */
export interface FaultTransaction {
  /** Sequence number of the transaction on this server, from 1. */
  id: number;
  /** MAIL FROM address ('' for the null sender). */
  from: string;
  /** Every RCPT address that got a 250, in order (an address given twice counts twice). */
  rcptAccepted: string[];
  /** RCPTs refused by this server's rules, in order. */
  rcptRejected: RejectedRcpt[];
  /** Message bytes as received, after smtp-server's dot-unstuffing, without the terminating `.\r\n`; undefined until the final dot. */
  data: Buffer | undefined;
  /** Reply to the final dot exactly as written on the wire; undefined if none was sent (yet). */
  dataReply: string | undefined;
  /** True when the server closed the connection after the body instead of replying. */
  dropped: boolean;
  /** Id of the connection (see FaultConnection.id). */
  connectionId: string;
  /** Whether the connection was TLS when MAIL was accepted. */
  secure: boolean;
  /** Authenticated username, if any. */
  auth: string | undefined;
}

/** One line of a connection's transcript: C = from the client, S = from the server. */
export interface TranscriptLine {
  /** Direction: C client→server, S server→client. */
  dir: 'C' | 'S';
  /** The line without CRLF (a multi-line reply gives one entry per line). */
  line: string;
  /** Milliseconds since the connection was accepted. */
  t: number;
}

/** Everything recorded about one client connection. */
export interface FaultConnection {
  /** smtp-server's session id. */
  id: string;
  /** Client address and port. */
  remoteAddress: string;
  /** Client port. */
  remotePort: number;
  /** Command lines in the order smtp-server processed them (AUTH continuation lines included, unredacted). */
  commands: string[];
  /** Commands and replies interleaved as processed and written. */
  transcript: TranscriptLine[];
  /** True once the socket closed. */
  closed: boolean;
}

/** A running fault server and its recordings. */
export interface FaultServer {
  /** Loopback address it listens on. */
  host: string;
  /** Port it listens on. */
  port: number;
  /** The underlying smtp-server instance. */
  server: SMTPServer;
  /** Transactions in order of their MAIL command. */
  transactions: FaultTransaction[];
  /** Connections in order of acceptance (the connection count is `connections.length`). */
  connections: FaultConnection[];
  /** MAIL commands refused by the sender grammar. */
  mailRejected: Array<{ address: string; reply: string; connectionId: string }>;
  /** Server names clients asked for in TLS SNI, in order (a handshake without SNI adds nothing). */
  sniNames: string[];
  /** Per recipient address, how many times a message was accepted for it with a final 250: the "no recipient delivered twice" check. */
  deliveries(): Map<string, number>;
  /** Resolves once `predicate(this)` holds; rejects after `timeoutMs`. */
  waitFor(predicate: (s: FaultServer) => boolean, timeoutMs: number, what?: string): Promise<void>;
  /** Drops every connection and stops listening. */
  close(): Promise<void>;
}

/** What the address grammar says to do with one recipient. */
export interface RcptBehaviour {
  /** Delay before replying to this RCPT (from `slow-<ms>-`). */
  delayMs: number;
  /** Refuse this RCPT with this reply (from `<code>-` / `rcpt-<code>-`). */
  reject?: ReplyParts;
  /** Refuse with 451 4.3.0 the first time this server sees the address, accept later (`tempfail-once-`). */
  tempfailOnce: boolean;
  /** Reply to the final dot of the transaction (`data-<code>-`). */
  dataReply?: ReplyParts;
  /** Close the connection after the body without replying (`drop-after-data-`). */
  dropAfterData: boolean;
}

/** A reply split into its parts, rendered with or without the enhanced code by `renderReply`. */
export interface ReplyParts {
  /** Three-digit reply code. */
  code: number;
  /** RFC 3463 enhanced status code, e.g. `5.2.2`. */
  enhanced: string;
  /** Human-readable text. */
  text: string;
}

const RCPT_REPLIES: Record<number, [string, string]> = {
  421: ['4.3.2', 'Service shutting down, closing transmission channel'],
  450: ['4.2.1', 'Mailbox temporarily unavailable'],
  451: ['4.3.0', 'Local error in processing, try again later'],
  452: ['4.2.2', 'Mailbox full, try again later'],
  550: ['5.1.1', 'No such user here'],
  551: ['5.1.6', 'User not local'],
  552: ['5.2.2', 'Mailbox full, quota exceeded'],
  553: ['5.1.3', 'Mailbox name not allowed'],
  554: ['5.7.1', 'Recipient address rejected: Access denied'],
};
// `<code>-<variant>-…@` picks a more specific reply where one code has several meanings.
const RCPT_VARIANTS: Record<string, Record<number, [string, string]>> = {
  toomany: { 452: ['4.5.3', 'Too many recipients'], 552: ['5.5.3', 'Too many recipients'] },
  greylist: { 450: ['4.7.1', 'Greylisted, try again later'], 451: ['4.7.1', 'Greylisted, try again later'] },
};
const DATA_REPLIES: Record<number, [string, string]> = {
  421: ['4.3.2', 'Service shutting down, closing transmission channel'],
  450: ['4.2.0', 'Message temporarily deferred'],
  451: ['4.3.0', 'Error processing message, try again later'],
  452: ['4.3.1', 'Insufficient system storage'],
  550: ['5.7.1', 'Message rejected as spam'],
  552: ['5.3.4', 'Message too big for system'],
  554: ['5.6.0', 'Content rejected'],
};
const MAIL_REPLIES: Record<number, [string, string]> = {
  421: ['4.3.2', 'Service shutting down, closing transmission channel'],
  450: ['4.1.8', 'Sender address rejected: Domain not found'],
  451: ['4.3.0', 'Temporary failure, try again later'],
  452: ['4.3.1', 'Insufficient system storage'],
  550: ['5.7.1', 'Sender rejected'],
  552: ['5.3.4', 'Message size exceeds fixed limit'],
  553: ['5.1.7', 'Sender address rejected'],
  554: ['5.7.1', 'Sender rejected: Access denied'],
};

function parts(code: number, table: Record<number, [string, string]>, variant?: Record<number, [string, string]>): ReplyParts {
  const hit = variant?.[code] ?? table[code];
  if (hit) return { code, enhanced: hit[0], text: hit[1] };
  return { code, enhanced: `${Math.floor(code / 100)}.0.0`, text: 'Rejected by test peer' };
}

/** Renders a reply line: `<code> <enhanced> <text>`, or `<code> <text>` when enhanced codes are off. */
export function renderReply(p: ReplyParts, enhanced: boolean): string {
  return enhanced ? `${p.code} ${p.enhanced} ${p.text}` : `${p.code} ${p.text}`;
}

function localPartOf(address: string): string {
  const at = address.lastIndexOf('@');
  return (at >= 0 ? address.slice(0, at) : address).toLowerCase();
}

/**
 * Parses the recipient grammar of an address's local part (case-insensitive):
 * `slow-<ms>-` (prefix, combinable), `<code>-…` / `rcpt-<code>-…` for 4xx/5xx codes
 * (`552-quota`, `452-toomany`, `451-greylist`), `tempfail-once-…`, `data-<code>-…`,
 * `drop-after-data-…`. Anything else is accepted.
 */
export function parseRcptGrammar(address: string): RcptBehaviour {
  let local = localPartOf(address);
  let delayMs = 0;
  for (let i = 0; i < 8; i++) {
    const slow = /^slow-(\d+)(?:-|$)/.exec(local);
    if (!slow) break;
    delayMs += Number(slow[1]);
    local = local.slice(slow[0].length);
  }
  const b: RcptBehaviour = { delayMs, tempfailOnce: false, dropAfterData: false };
  const code = /^(?:rcpt-)?([45]\d\d)(?:-([a-z0-9]+))?(?:-|$)/.exec(local);
  if (code) {
    const n = Number(code[1]);
    b.reject = parts(n, RCPT_REPLIES, code[2] === undefined ? undefined : RCPT_VARIANTS[code[2]]);
    return b;
  }
  if (/^tempfail-once(?:-|$)/.test(local)) b.tempfailOnce = true;
  const data = /^data-([45]\d\d)(?:-|$)/.exec(local);
  if (data) b.dataReply = parts(Number(data[1]), DATA_REPLIES);
  if (/^drop-after-data(?:-|$)/.test(local)) b.dropAfterData = true;
  return b;
}

/** Parses the sender grammar: `mail-<code>-…@` refuses MAIL FROM with that code; undefined means accept. */
export function parseMailGrammar(address: string): ReplyParts | undefined {
  const m = /^mail-([45]\d\d)(?:-|$)/.exec(localPartOf(address));
  return m ? parts(Number(m[1]), MAIL_REPLIES) : undefined;
}

// An error message starting with this marker is written verbatim by the patched send()
// of the connection, instead of smtp-server's `<code> <mapped enhanced code> <message>`.
const EXACT = '\u0000fault-server-exact\u0000';

interface ParsedExact {
  code: number;
  texts: string[];
}

/** Splits a full reply (one line, or several joined with CRLF/LF) into its code and the text after `<code>[ -]` of each line. */
function parseExact(reply: string): ParsedExact {
  const lines = reply.replace(/\r?\n$/, '').split(/\r?\n/);
  let code = 0;
  const texts: string[] = [];
  for (const line of lines) {
    const m = /^(\d{3})(?:[ -](.*))?$/.exec(line);
    if (!m) throw new Error(`fault-server: not an SMTP reply line: ${JSON.stringify(line)}`);
    const c = Number(m[1]);
    if (code !== 0 && c !== code) throw new Error(`fault-server: mixed reply codes in ${JSON.stringify(reply)}`);
    code = c;
    texts.push(m[2] ?? '');
  }
  return { code, texts };
}

function exactError(reply: string): SMTPServerError {
  const p = parseExact(reply);
  const err: SMTPServerError = new Error(EXACT + p.texts.join('\n'));
  err.responseCode = p.code;
  return err;
}

interface ConnState {
  record: FaultConnection;
  conn: SMTPConnection;
  started: number;
  current: FaultTransaction | undefined;
  awaitingDataReply: FaultTransaction | undefined;
}

/** Starts a fault server on 127.0.0.1, port 0. */
export async function startFaultServer(opts: FaultServerOptions = {}): Promise<FaultServer> {
  const host = opts.host ?? '127.0.0.1';
  const enhanced = opts.enhancedStatusCodes ?? true;
  const limitReply = opts.limitReply ?? (enhanced ? '452 4.5.3 Too many recipients' : '452 Too many recipients');
  parseExact(limitReply);
  if (opts.dataReply !== undefined) parseExact(opts.dataReply);
  if (opts.greeting !== undefined) parseExact(opts.greeting);
  const slowMs = opts.slowMs ?? 0;
  const states = new Map<string, ConnState>();
  const tempfailSeen = new Set<string>();
  const transactions: FaultTransaction[] = [];
  const connections: FaultConnection[] = [];
  const mailRejected: FaultServer['mailRejected'] = [];
  const sniNames: string[] = [];
  let txSeq = 0;

  const later = (fn: () => void, ms: number): void => {
    if (ms > 0) setTimeout(fn, ms);
    else fn();
  };

  const logLine = (st: ConnState, dir: 'C' | 'S', text: string): void => {
    const t = Date.now() - st.started;
    for (const line of text.split('\r\n')) st.record.transcript.push({ dir, line, t });
  };

  // smtp-server logs every reply it writes (debug, tnx 'send') with the connection id:
  // the one place that sees replies exactly as written, including its own (552 SIZE, 503...).
  const logger = {
    debug(entry: { tnx?: string; cid?: string } | undefined, message?: string, payload?: unknown): void {
      if (entry?.tnx !== 'send' || message !== 'S:' || entry.cid === undefined) return;
      const st = states.get(entry.cid);
      if (!st) return;
      const line = String(payload);
      logLine(st, 'S', line);
      const code = Number(line.slice(0, 3));
      if (st.awaitingDataReply && (code < 300 || code >= 400)) {
        st.awaitingDataReply.dataReply = line;
        st.awaitingDataReply = undefined;
      }
    },
    info(): void {},
    warn(): void {},
    error(): void {},
    trace(): void {},
    fatal(): void {},
  };

  const stateOf = (session: SMTPServerSession): ConnState => {
    const st = states.get(session.id);
    if (!st) throw new Error(`fault-server: unknown session ${session.id}`);
    return st;
  };

  const options: SMTPServerOptions = {
    name: opts.hostname ?? 'fault-server.test',
    banner: opts.banner ?? 'fault-server',
    logger,
    disableReverseLookup: true,
    hidePIPELINING: opts.pipelining === false,
    hideENHANCEDSTATUSCODES: !enhanced,
    hide8BITMIME: opts.eightBitMime === false,
    hideSMTPUTF8: opts.smtputf8 === false,
    hideDSN: opts.dsn !== true,
    hideSTARTTLS: !opts.tls,
    disabledCommands: [...(opts.tls ? [] : ['STARTTLS']), ...(opts.auth ? [] : ['AUTH'])],
    authOptional: !opts.auth,
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: !opts.tls,
    socketTimeout: opts.socketTimeoutMs ?? 30_000,
    closeTimeout: 1_000,
    ...(opts.size !== undefined ? { size: opts.size, rejectOversized: true } : {}),
    ...(opts.tls ? { key: opts.tls.key, cert: opts.tls.cert } : {}),
    ...(opts.tls && opts.implicitTls ? { secure: true } : {}),
    ...(opts.tls ? { SNICallback: (name: string, cb: (err: Error | null, ctx?: import('node:tls').SecureContext) => void) => { sniNames.push(name); cb(null); } } : {}),

    onAuth(auth: SMTPServerAuthentication, _session: SMTPServerSession, cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void): void {
      const want = opts.auth;
      if (want && auth.username === want.username && auth.password === want.password) {
        cb(null, { user: auth.username });
        return;
      }
      cb(exactError(renderReply({ code: 535, enhanced: '5.7.8', text: 'Authentication credentials invalid' }, enhanced)));
    },

    onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
      const st = stateOf(session);
      const reject = parseMailGrammar(address.address);
      if (reject) {
        const reply = renderReply(reject, enhanced);
        mailRejected.push({ address: address.address, reply, connectionId: st.record.id });
        cb(exactError(reply));
        return;
      }
      const tx: FaultTransaction = {
        id: ++txSeq,
        from: address.address,
        rcptAccepted: [],
        rcptRejected: [],
        data: undefined,
        dataReply: undefined,
        dropped: false,
        connectionId: st.record.id,
        secure: session.secure,
        auth: typeof session.user === 'string' ? session.user : undefined,
      };
      transactions.push(tx);
      st.current = tx;
      cb();
    },

    onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
      const st = stateOf(session);
      const tx = st.current;
      if (!tx) {
        cb(exactError(renderReply({ code: 503, enhanced: '5.5.1', text: 'Error: need MAIL command' }, enhanced)));
        return;
      }
      const custom = opts.rcptReply?.(address.address, tx);
      const b = parseRcptGrammar(address.address);
      later(() => {
        const reject = (reply: string): void => {
          tx.rcptRejected.push({ address: address.address, reply });
          cb(exactError(reply));
        };
        if (opts.maxRecipientsPerTransaction !== undefined && tx.rcptAccepted.length >= opts.maxRecipientsPerTransaction) {
          reject(limitReply);
          return;
        }
        if (custom !== undefined) {
          if (parseExact(custom).code >= 400) {
            reject(custom);
            return;
          }
          tx.rcptAccepted.push(address.address);
          cb();
          return;
        }
        if (b.reject) {
          reject(renderReply(b.reject, enhanced));
          return;
        }
        const key = address.address.toLowerCase();
        if (b.tempfailOnce && !tempfailSeen.has(key)) {
          tempfailSeen.add(key);
          reject(renderReply({ code: 451, enhanced: '4.3.0', text: 'Temporary failure, try again later' }, enhanced));
          return;
        }
        tx.rcptAccepted.push(address.address);
        cb();
      }, b.delayMs);
    },

    onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): void {
      const st = stateOf(session);
      const tx = st.current;
      st.awaitingDataReply = tx;
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', () => {
        /* client went away mid-body; the transaction stays without data */
      });
      stream.on('end', () => {
        if (!tx) {
          cb(exactError('503 Error: no transaction'));
          return;
        }
        tx.data = Buffer.concat(chunks);
        const behaviours = tx.rcptAccepted.map(parseRcptGrammar);
        if (opts.dropAfterData || behaviours.some((b) => b.dropAfterData)) {
          tx.dropped = true;
          st.awaitingDataReply = undefined;
          st.conn._socket.destroy();
          return;
        }
        const fromRcpt = behaviours.find((b) => b.dataReply)?.dataReply;
        const reply =
          fromRcpt !== undefined
            ? renderReply(fromRcpt, enhanced)
            : (opts.dataReply ??
              renderReply({ code: 250, enhanced: '2.0.0', text: `Ok: queued as ${randomBytes(5).toString('hex').toUpperCase()}` }, enhanced));
        const err = exactError(reply);
        later(() => {
          if ((err.responseCode ?? 0) < 400) cb(null, err.message);
          else cb(err);
        }, slowMs);
      });
    },
  };

  const server = new SMTPServer(options);
  server.on('error', () => {
    /* socket errors of single connections; the test sees them as closed connections */
  });

  // Hook each connection as smtp-server creates it: connect() adds the new
  // SMTPConnection to server.connections synchronously, before any byte is read.
  const origConnect = server.connect.bind(server);
  server.connect = (socket, socketOptions) => {
    origConnect(socket, socketOptions);
    let conn: SMTPConnection | undefined;
    for (const c of server.connections) conn = c;
    if (!conn) return;
    const record: FaultConnection = {
      id: conn.id,
      remoteAddress: conn.remoteAddress,
      remotePort: conn.remotePort,
      commands: [],
      transcript: [],
      closed: false,
    };
    connections.push(record);
    const st: ConnState = { record, conn, started: Date.now(), current: undefined, awaitingDataReply: undefined };
    states.set(conn.id, st);
    socket.once('close', () => {
      record.closed = true;
    });
    patchConnection(conn, st);
  };

  const patchConnection = (conn: SMTPConnection, st: ConnState): void => {
    const origSend = conn.send.bind(conn);
    conn.send = (code: number, data?: string | string[] | null, context?: string | false): void => {
      if (typeof data === 'string' && data.startsWith(EXACT)) {
        const texts = data.slice(EXACT.length).split('\n');
        // context false: no enhanced code of smtp-server's own; the text already is the reply.
        origSend(code, texts.length === 1 ? texts[0] : texts, false);
        return;
      }
      origSend(code, data, context);
    };
    const origOnCommand = conn._onCommand.bind(conn);
    conn._onCommand = (command: Buffer, callback?: () => void): void => {
      logLine(st, 'C', command.toString('binary'));
      st.record.commands.push(command.toString('binary'));
      later(() => origOnCommand(command, callback), slowMs);
    };
    const origGreeting = conn._sendGreeting.bind(conn);
    conn._sendGreeting = (): void => {
      later(() => {
        if (opts.greeting === undefined) {
          origGreeting();
          return;
        }
        const p = parseExact(opts.greeting);
        conn.send(p.code, EXACT + p.texts.join('\n'));
        if (p.code !== 220) conn.close();
      }, slowMs);
    };
  };

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const addr = server.server.address();
  if (addr === null || typeof addr === 'string') throw new Error('fault-server: no TCP address');

  const self: FaultServer = {
    host,
    port: addr.port,
    server,
    transactions,
    connections,
    mailRejected,
    sniNames,
    deliveries(): Map<string, number> {
      const m = new Map<string, number>();
      for (const tx of transactions) {
        if (!tx.dataReply?.startsWith('250')) continue;
        for (const a of tx.rcptAccepted) m.set(a, (m.get(a) ?? 0) + 1);
      }
      return m;
    },
    waitFor(predicate, timeoutMs, what = 'fault-server condition'): Promise<void> {
      return pollUntil(() => predicate(self), timeoutMs, what);
    },
    close(): Promise<void> {
      return new Promise((resolve) => {
        for (const st of states.values()) st.conn._socket.destroy();
        server.close(() => resolve());
      });
    },
  };
  return self;
}
