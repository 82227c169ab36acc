// The thin socket/TLS driver around the pure client session (relay/protocol/client-session.ts).
// It owns the socket, the timers and the body stream; every decision is the session's.
import net from 'node:net';
import tls from 'node:tls';
import type { Readable } from 'node:stream';
import { DotStuffer } from '../protocol/dot-stuff.ts';
import { ReplyParser, type Reply } from '../protocol/reply.ts';
import {
  type SessionAction, type SessionEvent, type SessionOptions, type SessionState, type TransactionRequest,
  type TransactionResult, bodyAborted, initialSession, pendingTimeout, step,
} from '../protocol/client-session.ts';
import type { Verdict } from '../protocol/classify.ts';
import { type TlsProblem, certificateProblem, handshakeProblem, isCertificateError } from '../protocol/tls-problem.ts';

/** RFC 5321 §4.5.3.2 timeouts in milliseconds. */
export interface ConnectionTimeouts {
  connect: number;
  greeting: number;
  command: number;
  dataInit: number;
  dataBlock: number;
  dataTerm: number;
}

/** Where to connect. */
export interface Target {
  host: string; // name (for TLS SNI and logs)
  address: string; // IP to connect to
  port: number;
}

/** How the server's certificate is checked. */
export interface TlsTrust {
  /**
   * What the certificate must be valid for: a DNS name (RFC 6125 DNS-ID, also sent as SNI)
   * or an IP address (matched against iPAddress SANs only; RFC 6066 §3 allows no IP in SNI).
   * Default: the target's host as configured, never the address it resolved to.
   */
  identity?: string;
  /** PEM CA certificates to trust instead of Node's default store (Mozilla's list plus NODE_EXTRA_CA_CERTS). */
  ca?: string | string[];
}

/** How TLS went on one connection, reported once when the session is set up or has failed. */
export interface TlsOutcome {
  /** TLS was attempted or required (the policy was not `none`). */
  wanted: boolean;
  /** A TLS session was established. */
  established: boolean;
  /** Its certificate passed chain and identity checks. */
  verified: boolean;
  /** What was missing or wrong, if anything. */
  problem: TlsProblem | null;
}

/** Hooks for metrics and logs; all optional. */
export interface ConnectionObserver {
  reply?(reply: Reply): void;
  wrote?(bytes: number): void;
  tls?(outcome: TlsOutcome): void;
}

/** Options for one outbound connection. */
export interface ConnectionOptions extends SessionOptions {
  timeouts: ConnectionTimeouts;
  /** Certificate identity and trust anchors (see TlsTrust); verification itself follows `tlsVerify`. */
  trust?: TlsTrust;
  observer?: ConnectionObserver;
  /** BDAT segment size in bytes. */
  chunkSize?: number;
}

/** Why a session could not be set up (connect, greeting, EHLO, STARTTLS, AUTH). */
export class SessionFailure extends Error {
  constructor(
    readonly stage: string,
    readonly verdict: Verdict,
    readonly reply: Reply | null,
    message: string,
    /** RFC 3463 status of a failure decided locally (no reply), e.g. 4.7.5; null when a reply or the network decided. */
    readonly status: string | null = null,
  ) {
    super(message);
    this.name = 'SessionFailure';
  }
}

/** A body source: called once per transaction, it returns the raw message (CRLF or LF line endings). */
export type BodySource = () => Readable | AsyncIterable<Uint8Array>;

const DEFAULT_CHUNK = 1024 * 1024;
/** Pipelined BDAT segments allowed in flight without a reply. */
const BDAT_WINDOW = 2;
/** Body bytes gathered before a socket write (fewer syscalls for small messages). */
const WRITE_BATCH = 64 * 1024;

/** Where the identity check leaves its error for the secureConnect handler. */
interface IdentityCheck {
  error: Error | undefined;
}

/**
 * TLS client options for a connection. The identity is checked by tls.checkServerIdentity
 * on the configured name, never on the resolved address and never on Node's fallback
 * ('localhost' for a socket connected to an IP: issue 9). Under `enforce` Node itself
 * refuses a failed check (rejectUnauthorized), so nothing is ever written on such a
 * socket; otherwise the result is read on secureConnect and the session decides.
 */
function tlsOptions(target: Target, opts: ConnectionOptions, check: IdentityCheck): tls.ConnectionOptions {
  const identity = opts.trust?.identity ?? target.host;
  return {
    servername: net.isIP(identity) ? undefined : identity,
    ...(opts.trust?.ca !== undefined ? { ca: opts.trust.ca } : {}),
    rejectUnauthorized: opts.tlsVerify === 'enforce',
    minVersion: 'TLSv1.2', // RFC 8996 deprecates TLS 1.0/1.1; RFC 8461 §4.2 asks for 1.2 or later
    checkServerIdentity: (_name: string, cert: tls.PeerCertificate) => {
      check.error = checkIdentity(identity, cert);
      return check.error;
    },
  };
}

/**
 * tls.checkServerIdentity, minus its fallback to the subject CN when a certificate has no
 * subjectAltName: RFC 8461 §4.2 requires a DNS-ID SAN, and CN matching is what RFC 6125
 * §6.4.4 only tolerates for old certificates (Go and browsers refuse it too).
 */
export function checkIdentity(identity: string, cert: tls.PeerCertificate): Error | undefined {
  if (!cert.subjectaltname) {
    const err = new Error(`certificate has no subjectAltName, so no name or address it is valid for (CN=${cert.subject?.CN ?? ''} is not used)`) as Error & { code: string; reason: string };
    err.code = 'ERR_TLS_CERT_ALTNAME_INVALID';
    err.reason = err.message;
    return err;
  }
  return tls.checkServerIdentity(identity, cert);
}

/** One SMTP client connection driving the pure session over a socket. */
export class SmtpConnection {
  private state: SessionState;
  private socket: net.Socket;
  private parser = new ReplyParser();
  private timer: NodeJS.Timeout | null = null;
  private readyWaiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private txWaiter: { resolve: (r: TransactionResult) => void } | null = null;
  private bdatWaiter: (() => void) | null = null;
  private body: BodySource | null = null;
  private closed = false;
  private writeBuf: string[] = [];
  /** The handshake is under way: a socket error now is a TLS failure. */
  private handshaking = false;
  /** The last identity check's error (Node keeps only its code when rejectUnauthorized is off). */
  private identityCheck: IdentityCheck = { error: undefined };
  private tlsReported = false;
  /** Transactions completed on this connection. */
  transactions = 0;
  /** Replies received on this connection, in order (for tests and debugging). */
  readonly replies: Reply[] = [];

  private constructor(readonly target: Target, private readonly opts: ConnectionOptions, socket: net.Socket) {
    this.state = initialSession(opts);
    this.socket = socket;
  }

  /** Connects, reads the greeting, does EHLO/STARTTLS/AUTH; resolves once a transaction can start. */
  static open(target: Target, opts: ConnectionOptions): Promise<SmtpConnection> {
    return new Promise<SmtpConnection>((resolve, reject) => {
      const implicit = opts.tls === 'implicit';
      const identityCheck: IdentityCheck = { error: undefined };
      const socket = implicit
        ? tls.connect({ host: target.address, port: target.port, ...tlsOptions(target, opts, identityCheck) })
        : net.connect({ host: target.address, port: target.port });
      const conn = new SmtpConnection(target, opts, socket);
      conn.identityCheck = identityCheck;
      conn.handshaking = implicit;
      conn.readyWaiter = { resolve: () => resolve(conn), reject };
      const connectTimer = setTimeout(() => {
        conn.fail('timeout', `connect to ${target.address}:${target.port} timed out`);
      }, opts.timeouts.connect);
      socket.once(implicit ? 'secureConnect' : 'connect', () => {
        clearTimeout(connectTimer);
        socket.setNoDelay(true);
        if (implicit) conn.secured(socket as tls.TLSSocket);
        conn.armTimer();
      });
      conn.attach(socket);
      socket.once('close', () => clearTimeout(connectTimer));
    });
  }

  /** The certificate identity this connection checks. */
  get identity(): string {
    return this.opts.trust?.identity ?? this.target.host;
  }

  /** How TLS went (final once the connection is ready or has failed). */
  get tlsOutcome(): TlsOutcome {
    return {
      wanted: this.opts.tls !== 'none',
      established: this.state.tls && !this.handshaking,
      verified: this.state.tls && this.state.tlsVerified,
      problem: this.state.tlsProblem,
    };
  }

  /** True if another transaction may start on this connection. */
  get usable(): boolean {
    return !this.closed && !this.state.dead && this.state.phase === 'ready';
  }

  /** Whether the session runs over TLS now. */
  get secure(): boolean {
    return this.state.tls;
  }

  /** What the server offered in EHLO. */
  get capabilities() {
    return this.state.caps;
  }

  /** Runs one transaction; resolves with every recipient's result. Never rejects: failures are results. */
  send(req: TransactionRequest, body: BodySource): Promise<TransactionResult> {
    if (!this.usable) throw new Error('connection is not ready for a transaction');
    return new Promise<TransactionResult>((resolve) => {
      this.txWaiter = { resolve };
      this.body = body;
      this.dispatch({ type: 'begin', tx: req });
    });
  }

  /** Sends QUIT and closes (politely, bounded by the command timeout). */
  async quit(): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.dispatch({ type: 'quit' });
      setTimeout(() => this.socket.destroy(), Math.min(this.opts.timeouts.command, 5000)).unref();
    });
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.socket.destroy();
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => {
      // A reply can only answer a command that was sent before its bytes arrived (RFC 5321
      // §4.1.1 lock-step, RFC 2920 §3.1 replies in command order): more replies in this chunk
      // than commands outstanding when it arrived means the server is out of step (an extra
      // line, a stray reply), and taking them in order would pair each later command with an
      // earlier command's reply, e.g. count a BDAT LAST as accepted on a reply to a RCPT.
      let answerable = this.state.expect.length;
      for (const ev of this.parser.push(chunk)) {
        if (this.closed) return;
        if (ev.type === 'error') {
          this.fail('protocol', ev.message);
          return;
        }
        if (answerable === 0 && this.state.expect.length > 0) {
          const r = ev.reply;
          this.fail('protocol', `lost synchronization: ${this.target.host} sent a reply before the command it would answer (${r.code} ${r.lines[0] ?? ''})`);
          return;
        }
        answerable--;
        this.dispatch({ type: 'reply', reply: ev.reply });
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.handshaking || err.code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
        // rejectUnauthorized refused the certificate (its code and text are on the error),
        // or the handshake itself failed.
        const detail = err.code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? (err as { reason?: string }).reason ?? err.message : err.message;
        const problem = isCertificateError(err.code) ? certificateProblem(this.identity, err.code, detail) : handshakeProblem(this.identity, err.message);
        this.fail('tls', problem.reason, problem);
        return;
      }
      this.fail('connection', err.message);
    });
    socket.on('close', () => {
      const mid = this.parser.midReply ? ' in the middle of a reply' : '';
      this.fail('connection', `connection closed by ${this.target.host}${mid}`);
    });
  }

  private fail(kind: 'connection' | 'timeout' | 'protocol' | 'tls', message: string, problem?: TlsProblem): void {
    if (this.closed) return;
    this.dispatch({ type: 'error', kind, message, ...(problem ? { problem } : {}) });
    this.close();
  }

  /** The handshake finished: tell the session whether the certificate passed (it decides what that means). */
  private secured(socket: tls.TLSSocket): void {
    this.handshaking = false;
    if (socket.authorized) {
      this.dispatch({ type: 'tls-established', verified: true });
      return;
    }
    const code = typeof socket.authorizationError === 'string' ? socket.authorizationError : (socket.authorizationError as Error | undefined)?.message;
    const detail = code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? (this.identityCheck.error as { reason?: string } | undefined)?.reason : undefined;
    this.dispatch({ type: 'tls-established', verified: false, problem: certificateProblem(this.identity, code, detail) });
  }

  private reportTls(): void {
    if (this.tlsReported) return;
    this.tlsReported = true;
    this.opts.observer?.tls?.(this.tlsOutcome);
  }

  private close(): void {
    this.markClosed();
    this.socket.destroy();
  }

  private markClosed(): void {
    this.closed = true;
    this.clearTimer();
    this.readyWaiter?.reject(new SessionFailure('connect', { status: 'deferred', reason: 'connection', sameConnection: false }, null, `connection to ${this.target.host} closed`));
    this.readyWaiter = null;
    const w = this.bdatWaiter;
    this.bdatWaiter = null;
    w?.();
  }

  private dispatch(ev: SessionEvent): void {
    const { state, actions } = step(this.state, ev);
    this.state = state;
    for (const a of actions) this.perform(a);
    this.flush();
    this.armTimer();
  }

  private flush(): void {
    if (this.writeBuf.length === 0 || this.closed) return;
    const text = this.writeBuf.join('');
    this.writeBuf = [];
    this.opts.observer?.wrote?.(text.length);
    this.socket.write(text, 'latin1');
  }

  private perform(a: SessionAction): void {
    switch (a.type) {
      case 'write': this.writeBuf.push(a.text); break;
      case 'reply-seen':
        this.replies.push(a.reply);
        this.opts.observer?.reply?.(a.reply);
        if (a.reply.command === 'bdat' || a.reply.command === 'mail' || a.reply.command === 'rcpt') {
          const w = this.bdatWaiter;
          this.bdatWaiter = null;
          w?.();
        }
        break;
      case 'start-tls': this.flush(); this.upgrade(); break;
      case 'send-body': this.flush(); void this.writeBody(a.mode, a.pipelined); break;
      case 'ready': {
        this.reportTls();
        const w = this.readyWaiter;
        this.readyWaiter = null;
        w?.resolve();
        break;
      }
      case 'tx-done': {
        this.transactions++;
        this.body = null;
        const w = this.txWaiter;
        this.txWaiter = null;
        w?.resolve(a.result);
        break;
      }
      case 'session-failed': {
        this.reportTls();
        const w = this.readyWaiter;
        this.readyWaiter = null;
        w?.reject(new SessionFailure(a.stage, a.verdict, a.reply, `${this.target.host}[${this.target.address}]:${this.target.port}: ${a.message}`, a.status ?? null));
        break;
      }
      case 'close': {
        this.flush();
        this.markClosed();
        this.socket.end();
        setTimeout(() => this.socket.destroy(), 1000).unref();
        break;
      }
    }
  }

  private upgrade(): void {
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    const secure = tls.connect({ socket: plain, ...tlsOptions(this.target, this.opts, this.identityCheck) });
    this.socket = secure;
    this.parser = new ReplyParser();
    this.handshaking = true;
    this.attach(secure);
    secure.once('secureConnect', () => this.secured(secure));
  }

  private async writeBody(mode: 'data' | 'bdat', pipelined: boolean): Promise<void> {
    const source = this.body;
    if (!source) return;
    try {
      if (mode === 'data') await this.writeDataBody(source);
      else await this.writeBdatBody(source, pipelined);
    } catch (err) {
      this.fail('connection', `reading or writing the message body failed: ${(err as Error).message}`);
      return;
    }
    if (!this.closed) this.dispatch({ type: 'body-done' });
  }

  private async writeChunk(buf: Uint8Array): Promise<void> {
    if (this.closed) throw new Error('connection closed while sending data');
    this.opts.observer?.wrote?.(buf.length);
    if (this.socket.write(buf)) return;
    await this.waitDrain();
  }

  private waitDrain(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        cleanup();
        reject(new Error('data block timeout'));
      }, this.opts.timeouts.dataBlock);
      const onDrain = () => { cleanup(); resolve(); };
      const onClose = () => { cleanup(); reject(new Error('connection closed while sending data')); };
      const cleanup = () => {
        clearTimeout(t);
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
      };
      this.socket.on('drain', onDrain);
      this.socket.on('close', onClose);
    });
  }

  private async writeDataBody(source: BodySource): Promise<void> {
    // Coalesce the stuffed body into writes of up to WRITE_BATCH bytes, and send the
    // terminating dot with the last of them: a small message is one write, one segment.
    const stuffer = new DotStuffer({ stuff: true });
    let batch: Buffer[] = [];
    let batchLen = 0;
    for await (const chunk of source()) {
      const out = stuffer.push(chunk as Uint8Array);
      if (out.length === 0) continue;
      batch.push(out);
      batchLen += out.length;
      if (batchLen >= WRITE_BATCH) {
        await this.writeChunk(batch.length === 1 ? batch[0]! : Buffer.concat(batch, batchLen));
        batch = [];
        batchLen = 0;
      }
    }
    batch.push(stuffer.end(true));
    await this.writeChunk(Buffer.concat(batch));
  }

  private async writeBdatBody(source: BodySource, pipelined: boolean): Promise<void> {
    const size = this.opts.chunkSize ?? DEFAULT_CHUNK;
    const norm = new DotStuffer({ stuff: false });
    let pending: Buffer[] = [];
    let pendingLen = 0;
    const sendSegment = async (data: Buffer, last: boolean): Promise<boolean> => {
      // RFC 3030 §2: after a 4xx/5xx to BDAT, send no further segments.
      if (bodyAborted(this.state) || this.closed) return false;
      this.writeBuf.push(`BDAT ${data.length}${last ? ' LAST' : ''}\r\n`);
      this.flush();
      if (data.length) await this.writeChunk(data);
      this.dispatch({ type: 'bdat-chunk', last });
      // Lock-step waits for each segment's reply; pipelined keeps at most BDAT_WINDOW segments
      // unanswered, so an error reply stops the rest of a large message promptly.
      if (!last) await this.waitForBdatReplies(pipelined ? BDAT_WINDOW - 1 : 0);
      return true;
    };
    for await (const chunk of source()) {
      const out = norm.push(chunk as Uint8Array);
      if (out.length === 0) continue;
      pending.push(out);
      pendingLen += out.length;
      while (pendingLen > size) {
        const all = Buffer.concat(pending);
        if (!(await sendSegment(all.subarray(0, size), false))) return;
        pending = [all.subarray(size)];
        pendingLen = pending[0]!.length;
      }
    }
    pending.push(norm.end(false));
    await sendSegment(Buffer.concat(pending), true);
  }

  private waitForBdatReplies(maxOutstanding: number): Promise<void> {
    const outstanding = () => this.state.expect.filter((e) => e.cmd === 'bdat').length;
    if (outstanding() <= maxOutstanding) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = () => {
        if (this.closed || outstanding() <= maxOutstanding) resolve();
        else this.bdatWaiter = check;
      };
      this.bdatWaiter = check;
    });
  }

  private armTimer(): void {
    this.clearTimer();
    if (this.closed) return;
    const which = pendingTimeout(this.state);
    if (!which) return;
    const ms = this.opts.timeouts[which];
    this.timer = setTimeout(() => this.fail('timeout', `no ${which} reply from ${this.target.host} within ${ms} ms`), ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
