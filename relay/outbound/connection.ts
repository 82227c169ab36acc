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

/** Hooks for metrics and logs; all optional. */
export interface ConnectionObserver {
  reply?(reply: Reply): void;
  wrote?(bytes: number): void;
}

/** Options for one outbound connection. */
export interface ConnectionOptions extends SessionOptions {
  timeouts: ConnectionTimeouts;
  tlsRejectUnauthorized?: boolean;
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
      const socket = implicit
        ? tls.connect({ host: target.address, port: target.port, servername: net.isIP(target.host) ? undefined : target.host, rejectUnauthorized: opts.tlsRejectUnauthorized ?? false })
        : net.connect({ host: target.address, port: target.port });
      const conn = new SmtpConnection(target, opts, socket);
      conn.readyWaiter = { resolve: () => resolve(conn), reject };
      const connectTimer = setTimeout(() => {
        conn.fail('timeout', `connect to ${target.address}:${target.port} timed out`);
      }, opts.timeouts.connect);
      socket.once(implicit ? 'secureConnect' : 'connect', () => {
        clearTimeout(connectTimer);
        socket.setNoDelay(true);
        conn.armTimer();
      });
      conn.attach(socket);
      socket.once('close', () => clearTimeout(connectTimer));
    });
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
      for (const ev of this.parser.push(chunk)) {
        if (this.closed) return;
        if (ev.type === 'error') {
          this.fail('protocol', ev.message);
          return;
        }
        this.dispatch({ type: 'reply', reply: ev.reply });
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(err.code === 'ERR_SSL_WRONG_VERSION_NUMBER' ? 'tls' : 'connection', err.message));
    socket.on('close', () => {
      const mid = this.parser.midReply ? ' in the middle of a reply' : '';
      this.fail('connection', `connection closed by ${this.target.host}${mid}`);
    });
  }

  private fail(kind: 'connection' | 'timeout' | 'protocol' | 'tls', message: string): void {
    if (this.closed) return;
    this.dispatch({ type: 'error', kind, message });
    this.close();
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
        const w = this.readyWaiter;
        this.readyWaiter = null;
        w?.reject(new SessionFailure(a.stage, a.verdict, a.reply, `${this.target.host}[${this.target.address}]:${this.target.port}: ${a.message}`));
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
    const secure = tls.connect({
      socket: plain,
      servername: net.isIP(this.target.host) ? undefined : this.target.host,
      rejectUnauthorized: this.opts.tls === 'required' ? (this.opts.tlsRejectUnauthorized ?? false) : false,
    });
    this.socket = secure;
    this.parser = new ReplyParser();
    this.attach(secure);
    secure.once('secureConnect', () => this.dispatch({ type: 'tls-established' }));
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
