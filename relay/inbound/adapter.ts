// The ONLY module that knows smtp-server, and the only one that reaches into its private
// state. It turns smtp-server's callbacks and objects into plain facts and verdicts
// (session.ts, policy.ts) for server.ts, and bends the library where it must. Read
// against smtp-server 3.21.6 (dist/esm/smtp-server.js, smtp-connection.js and
// smtp-stream.js); package.json pins that exact version, adapter.test.ts checks the pin,
// and any upgrade means reading those files again for every private member named below.
//
// What smtp-server does by itself and how we bend it:
//  - Enhanced status codes (RFC 2034) are off unless hideENHANCEDSTATUSCODES is false.
//    Then `send(code, text, context)` prefixes a code chosen from the reply code and a
//    context name; replies to our handlers' errors get only the generic mapping (554 ->
//    5.6.0, 452 -> 4.2.2, 552 -> 5.2.2), and onConnect refusals get none. So every
//    connection's `send` is wrapped: a text that already starts with an enhanced code of
//    the right class goes out verbatim, everything else keeps smtp-server's mapping
//    (session.classifyReply). The greeting, the EHLO/HELO replies and 3xx replies carry
//    none, as RFC 2034 §3 says.
//  - DATA ends only on CRLF.CRLF; bare "\n.\n" or "\r.\r" is content (line-endings.ts).
//    Dot-unstuffing is done before our data handler sees the stream.
//  - `size` makes it check MAIL SIZE= (552 5.3.4) and set `stream.sizeExceeded` while the
//    data still flows; the body is cut off then and answered 552 5.3.4 after the dot.
//  - Without STARTTLS configured it allows AUTH over plaintext to anyone; AUTH is offered
//    per session instead (session.disabledCommands, via offerAuth).
//  - Its own refusals (early talker; a command line over 16 KiB; 10 unrecognized commands;
//    its idle timeout) are 421s that close the session; classifyReply gives them our
//    enhanced codes and reasons.
//  - Its idle timeout (socketTimeout) restarts with every byte and is suspended while a
//    handler runs; `turn()` reads its parser and handler state (`_parser._dataMode`,
//    `_handlerPending`, `_dataStream`) so server.ts can run the clocks of session.ts.
//  - Commands per session are counted in a wrapper of the connection's `_onCommand`.
//  - The greeting pause: SMTPConnection.init() waits a fixed 100 ms before the greeting
//    (its early-talker check, a timer nothing can shorten). PacedConnection.init() is the
//    same method with the pause chosen per connection (handlers.greetingDelayMs), so
//    SMTPServer.connect() is re-stated to create that subclass.
//  - PROXY protocol: smtp-server's `useProxy` reads v1 only and trusts a list of exact
//    addresses. Its two hooks for it (`_expectsProxyHeader`, `_handleProxy`) are
//    overridden: v1 and v2 (proxy-protocol.ts), from configured networks only, a header
//    required from them, and a PROXY header from anyone else refused. smtp-server's own
//    pre-session guard (`_acceptSocket`: maxClients and a timeout for sockets that have
//    not reached the session) still covers the sockets we read a header from.
import crypto from 'node:crypto';
import type net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { SMTPServer } from 'smtp-server';
import type {
  SMTPServerAddress, SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerDataStream, SMTPServerError,
  SMTPServerOptions, SMTPServerSession,
} from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { DataStream } from './body.ts';
import { REPLIES, replyMessage } from './policy.ts';
import type { PolicyReply } from './policy.ts';
import { PROXY_V2_MAX, looksLikeProxyHeader, parseProxyHeader } from './proxy-protocol.ts';
import type { ProxyHeaderProblem } from './proxy-protocol.ts';
import { classifyReply } from './session.ts';
import type { EnvelopeFacts, Turn } from './session.ts';

/** The smtp-server release this adapter was written against; package.json pins exactly this. */
export const SMTP_SERVER_VERSION = '3.21.6';

/** Reverse DNS for Received headers (smtp-server's resolver interface). */
export interface ReverseResolver {
  reverse(ip: string, callback: (err: Error | null, hostnames?: string[]) => void): void;
}

/** One SMTP session, in plain terms. `state` is the listener's own, made by handlers.open. */
export interface SmtpSession<S> {
  readonly id: string;
  /** The client's address: from the PROXY header when a trusted load balancer sent one, else the socket's peer. */
  readonly remoteAddress: string;
  /** The TCP peer: the load balancer for a proxied connection, else the client. */
  readonly peerAddress: string;
  readonly state: S;
  /** TLS is on (implicit, or after STARTTLS). */
  secure(): boolean;
  /** The EHLO/HELO name, '' before the client greeted. */
  heloName(): string;
  /** The SMTP AUTH identity, when the client authenticated. */
  user(): string | undefined;
  /** Number of the current transaction in this session (1, 2, ...). */
  transaction(): number;
  /** Whose move it is (session.checkClientClock). */
  turn(): Turn;
  /** MAIL was accepted and the transaction has no final reply yet. */
  inTransaction(): boolean;
  /** The session is closing or closed: nothing more can be sent. */
  closed(): boolean;
  /** Sends `reply` (a 421) and closes the session, unless it is already closing. */
  end(reply: PolicyReply): void;
  /** Offers AUTH in EHLO and accepts the command, or not (RFC 4954 §4). */
  offerAuth(offered: boolean): void;
  /** What the Received header says about the client and the session. */
  traceFacts(): { clientHostname: string | undefined; openingCommand: string; tls: { version?: string; cipher?: string } | undefined };
  /** The envelope of the transaction in progress. */
  envelope(): EnvelopeFacts;
  /** Recipients accepted so far in this transaction (without building the envelope). */
  recipientCount(): number;
}

/** A refused address command, or the address to record (normalised). */
export type AddressVerdict = { address: string } | { refuse: PolicyReply };

/** The final reply to a message: 250 with `text`, a refusal, or nothing (the client is gone). */
export type DataReply = { text: string } | { refuse: PolicyReply } | { aborted: true };

/** The credentials of an AUTH command. */
export interface AuthAttempt {
  method: string;
  username: string;
  password: string;
  authzid: string | undefined;
  authcid: string | undefined;
}

/** What the listener decides; every method is called by the adapter at the matching point of a session. */
export interface SmtpHandlers<S> {
  /** A connection reached its session (after any PROXY header): the listener's state for it. */
  open(s: { id: string; remoteAddress: string; peerAddress: string }): S;
  /** The session exists; returns the pause before its greeting, ms (0: greet at once). */
  accepted(s: SmtpSession<S>): number;
  /** Greet, or refuse with a 421 (null: greet). */
  connect(s: SmtpSession<S>): PolicyReply | null;
  /** TLS came up (STARTTLS). */
  secured(s: SmtpSession<S>): void;
  /** The session ended, however it ended (also for refused connections). */
  closed(s: SmtpSession<S>): void;
  /** A command line arrived: null passes it on, a reply ends the session with it. */
  command(s: SmtpSession<S>): PolicyReply | null;
  /** A reply went out; `library` is set for smtp-server's own replies (`refusal`: what we sent instead). */
  replied(s: SmtpSession<S>, code: number, library: { text: string; refusal: PolicyReply | null } | null): void;
  auth(s: SmtpSession<S>, a: AuthAttempt): Promise<{ user: string } | { refuse: PolicyReply }>;
  mailFrom(s: SmtpSession<S>, m: { address: string; declaredSize: number | undefined; smtputf8: boolean }): AddressVerdict | Promise<AddressVerdict>;
  rcptTo(s: SmtpSession<S>, r: { address: string; smtputf8: boolean }): AddressVerdict;
  /** The message: `stream` is its data, dot-unstuffed; `byteLength`/`sizeExceeded` track its size. */
  data(s: SmtpSession<S>, stream: DataStream): Promise<DataReply>;
  /** The reply to the message has gone out (or the client is gone). */
  afterData(s: SmtpSession<S>): void;
  /** A socket-level error of one connection (resets, failed handshakes). */
  connectionError(err: Error): void;
}

/** Why a connection was refused before its session because of the PROXY protocol. */
export type ProxyRefusal = ProxyHeaderProblem | 'untrusted_source' | 'timeout';

/** PROXY protocol (v1 and v2) from trusted load balancers. */
export interface ProxyOptions {
  /** Whether a TCP peer is a load balancer whose PROXY header we believe (and require). */
  trusted: (peer: string) => boolean;
  /** How long a trusted peer has to send its header after connecting. */
  headerTimeoutMs: number;
  /** A connection was refused (a log line and a metric). */
  refused(peer: string, why: ProxyRefusal, detail: string): void;
}

/** The listener's settings that smtp-server takes. */
export interface AdapterOptions {
  /** Name in the greeting and EHLO reply. */
  hostname: string;
  implicitTls: boolean;
  /** Certificate and key; needed for implicitTls, and offers STARTTLS otherwise. */
  tls: { key: Buffer; cert: Buffer } | undefined;
  /** A users file is configured: AUTH may be offered. */
  auth: boolean;
  maxMessageSize: number;
  /** smtp-server's own bound on connections, counted before our onConnect limits apply. */
  maxClients: number;
  /** smtp-server's idle timeout. */
  socketTimeoutMs: number;
  /** A resolver, false to skip reverse DNS, undefined for the system resolver. */
  reverseDns: ReverseResolver | false | undefined;
  /** Where smtp-server's own log lines go (one level down: ours are the ones that matter). */
  libraryLog: Logger;
  /** PROXY protocol; undefined: off, a PROXY header is then just a bad command. */
  proxy: ProxyOptions | undefined;
}

/** The running smtp-server. */
export interface SmtpListener {
  listen(port: number, host: string): Promise<number>;
  /** Stops listening and resolves once every connection is gone (smtp-server's close, with its grace). */
  close(): Promise<void>;
  /** Swaps the certificate for new connections (a cert-manager renewal). */
  updateTls(t: { key: Buffer; cert: Buffer }): void;
}

// smtp-server's commands we never want: the proxy commands (XCLIENT/XFORWARD trust a
// peer to rewrite the client's identity; PROXY protocol above is the checked way), and
// sendmail's joke commands.
const ALWAYS_DISABLED = ['XCLIENT', 'XFORWARD', 'WIZ', 'SHELL', 'KILL'];

/** A socket's peer address as logs and trust checks want it: an IPv4 client of a dual-stack listener without its ::ffff: prefix. */
const plainAddress = (a: string | undefined): string => (a ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');

const smtpError = (r: PolicyReply): SMTPServerError => Object.assign(new Error(replyMessage(r)), { responseCode: r.code });

// Session ids in smtp-server's format (16 base-32 characters) name a session in logs and
// in the Received header's id: unique, not secret. 50 random bits per process, then a
// counter, instead of 80 fresh random bits and a BigInt per connection.
const ID_PREFIX = BigInt(`0x${crypto.randomBytes(7).toString('hex')}`).toString(32).padStart(11, '0').slice(-10);
let idCounter = 0;
const newSessionId = (): string => `${ID_PREFIX}${(idCounter++ % 32 ** 6).toString(32).padStart(6, '0')}`;

/**
 * SMTPConnection with the pause before the greeting chosen per connection. init() is
 * smtp-server 3.21.6's, except for the fixed `setTimeout(() => this.connectionReady(), 100)`.
 */
class PacedConnection extends SMTPConnection {
  greetingDelayMs = 100;

  override init(): void {
    this._setListeners(() => {
      const { maxClients } = this._server.options;
      if (maxClients && this._server.connections.size > maxClients) {
        this.send(421, `${this.name} Too many connected clients, try again in a moment`, false);
        return;
      }
      if (this.greetingDelayMs <= 0) {
        this.connectionReady();
        return;
      }
      // The library's early-talker window: a command before the greeting gets "You talk too soon".
      const timer = setTimeout(() => this.connectionReady(), this.greetingDelayMs);
      timer.unref();
    });
  }
}

/** The SMTPServer with our connection class, the session handles, and our PROXY protocol. */
class AdaptedServer extends SMTPServer {
  created: ((conn: PacedConnection, peer: string) => void) | undefined;
  proxy: ProxyOptions | undefined;

  /** smtp-server 3.21.6's connect(), creating a PacedConnection and letting us hook it before init() can reply. */
  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    const connection = new PacedConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data: Parameters<SMTPServer['_onClientConnect']>[0]) => this._onClientConnect(data));
    this.created?.(connection, plainAddress(socket.remoteAddress));
    connection.init();
  }

  override _expectsProxyHeader(socket: net.Socket): boolean {
    return this.proxy !== undefined && this.proxy.trusted(plainAddress(socket.remoteAddress));
  }

  override _handleProxy(socket: net.Socket, callback: (err: Error | null, socketOptions?: SMTPConnectionOptions & { id: string }) => void): void {
    const id = newSessionId();
    const proxy = this.proxy;
    if (!proxy || !this._expectsProxyHeader(socket)) {
      callback(null, { id });
      return;
    }
    readProxyHeader(socket, proxy, id, callback);
  }
}

/** The reply a load balancer's client sees when its connection is refused for the PROXY protocol. */
function proxyRefusalReply(why: ProxyRefusal): PolicyReply {
  if (why === 'untrusted_source') return REPLIES.proxyUntrusted;
  if (why === 'timeout') return REPLIES.proxyTimeout;
  return REPLIES.proxyInvalid;
}

/** Reads a PROXY header off a trusted peer's socket; calls back with the client's address, or refuses the connection. */
function readProxyHeader(
  socket: net.Socket, proxy: ProxyOptions, id: string,
  callback: (err: Error | null, socketOptions?: SMTPConnectionOptions & { id: string }) => void,
): void {
  const peer = plainAddress(socket.remoteAddress);
  let buf: Buffer = Buffer.alloc(0);
  let finished = false;
  const cleanup = (): void => {
    clearTimeout(timer);
    socket.removeListener('readable', onReadable);
    socket.removeListener('error', onGone);
    socket.removeListener('close', onGone);
    socket.removeListener('end', onGone);
  };
  const refuse = (why: ProxyRefusal, detail: string): void => {
    if (finished) return;
    finished = true;
    cleanup();
    proxy.refused(peer, why, detail);
    // A late EPIPE must not become an uncaught exception once our listener is gone.
    socket.on('error', () => {});
    // RFC 5321 §3.1: a 421 may stand in for the greeting. The load balancer relays it to the client.
    socket.end(`421 ${replyMessage(proxyRefusalReply(why))}\r\n`);
    setTimeout(() => socket.destroy(), 1000).unref();
    callback(new Error(`PROXY header refused: ${why}`));
  };
  const onGone = (): void => {
    // Closed before a header: a health check that only opens the port, or a reset. Not a refusal.
    if (finished) return;
    finished = true;
    cleanup();
    socket.on('error', () => {});
    socket.destroy();
    callback(new Error('connection closed before the PROXY header'));
  };
  const onReadable = (): void => {
    let chunk: Buffer | null;
    while (!finished && (chunk = socket.read() as Buffer | null) !== null) {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r = parseProxyHeader(buf);
      if (r.kind === 'incomplete') {
        if (buf.length > PROXY_V2_MAX) refuse('too_long', `${buf.length} bytes without a complete header`);
        continue;
      }
      if (r.kind === 'invalid') {
        refuse(r.problem, r.detail);
        return;
      }
      finished = true;
      cleanup();
      const rest = buf.subarray(r.length);
      // Whatever the client sent behind the header is SMTP (an early talker, if anything).
      if (rest.length > 0) socket.unshift(rest);
      callback(null, r.kind === 'proxied' ? { id, remoteAddress: r.source.address, remotePort: r.source.port } : { id });
      return;
    }
  };
  const timer = setTimeout(() => refuse('timeout', `no PROXY header within ${proxy.headerTimeoutMs} ms`), proxy.headerTimeoutMs);
  timer.unref();
  socket.on('readable', onReadable);
  socket.on('error', onGone);
  socket.on('close', onGone);
  socket.on('end', onGone);
}

/** Starts nothing yet: builds smtp-server with our handlers; listen() opens the port. */
export function createSmtpListener<S>(o: AdapterOptions, h: SmtpHandlers<S>): SmtpListener {
  if (o.implicitTls && !o.tls) throw new Error('inbound.implicitTls needs inbound.tls.certFile and keyFile');
  const baseDisabled = [...ALWAYS_DISABLED, ...(o.auth ? [] : ['AUTH']), ...(o.tls && !o.implicitTls ? [] : ['STARTTLS'])];
  const handles = new WeakMap<SMTPServerSession, SmtpSession<S>>();
  const handleOf = (session: SMTPServerSession): SmtpSession<S> => {
    const s = handles.get(session);
    // Every session gets its handle in connect(), before smtp-server can call a handler.
    if (!s) throw new Error(`smtp-server session ${session.id} has no handle`);
    return s;
  };

  const hook = (conn: PacedConnection, peer: string): void => {
    const remoteAddress = conn.remoteAddress;
    const state = h.open({ id: conn.id, remoteAddress, peerAddress: peer });
    const session = conn.session;
    const s: SmtpSession<S> = {
      id: conn.id,
      remoteAddress,
      peerAddress: peer,
      state,
      secure: () => session.secure,
      heloName: () => session.hostNameAppearsAs || '',
      user: () => (session.user ? String(session.user) : undefined),
      transaction: () => session.transaction,
      turn: () => {
        if (conn._parser && conn._parser._dataMode) return 'data';
        return conn._handlerPending || conn._dataStream ? 'ours' : 'client';
      },
      inTransaction: () => Boolean(session.envelope?.mailFrom),
      closed: () => conn._closing || conn._closed,
      end: (r) => {
        if (!conn._closing && !conn._closed) conn.send(r.code, replyMessage(r));
      },
      offerAuth: (offered) => {
        session.disabledCommands = offered ? baseDisabled : [...baseDisabled, 'AUTH'];
      },
      traceFacts: () => ({
        clientHostname: session.clientHostname || undefined,
        openingCommand: session.openingCommand || '',
        tls: session.tlsOptions ? { version: session.tlsOptions.version, cipher: session.tlsOptions.standardName ?? session.tlsOptions.name } : undefined,
      }),
      recipientCount: () => session.envelope.rcptTo.length,
      envelope: () => {
        const e = session.envelope;
        return {
          from: e.mailFrom ? e.mailFrom.address : '',
          recipients: e.rcptTo.map((r) => ({ address: r.address, notify: r.dsn?.notify, orcpt: r.dsn?.orcpt })),
          ret: e.dsn?.ret,
          envid: e.dsn?.envid,
          smtputf8: e.smtpUtf8 === true,
          bodyType: e.bodyType ?? '7bit',
        };
      },
    };
    handles.set(session, s);
    conn.greetingDelayMs = h.accepted(s);

    const send = conn.send.bind(conn);
    conn.send = (code, data, context) => {
      if (typeof data === 'string') {
        const c = classifyReply(code, data);
        // Ours carries its enhanced code; `false` stops smtp-server adding another.
        if (c.kind === 'ours') {
          send(code, data, false);
          h.replied(s, code, null);
          return;
        }
        if (c.refusal) {
          send(c.refusal.code, replyMessage(c.refusal), false);
          h.replied(s, c.refusal.code, { text: data, refusal: c.refusal });
          return;
        }
        send(code, data, context);
        h.replied(s, code, { text: data, refusal: null });
        return;
      }
      send(code, data, context);
      h.replied(s, code, null);
    };
    const onCommand = conn._onCommand.bind(conn);
    conn._onCommand = (command, callback) => {
      const r = h.command(s);
      // Not passed on: the parser stays parked and the 421 closes the connection.
      if (r) return s.end(r);
      onCommand(command, callback);
    };
    const proxy = o.proxy;
    if (proxy && !proxy.trusted(peer)) {
      // A PROXY header from a peer we do not trust is a client claiming to be someone else.
      // It arrives as the connection's first bytes; this listener, added before init() pipes
      // the socket into the command parser, sees them first, and the 421 closes the parser
      // before it reads them.
      const sock = conn._socket;
      const peek = (chunk: Buffer): void => {
        sock.removeListener('data', peek);
        if (!looksLikeProxyHeader(chunk)) return;
        proxy.refused(peer, 'untrusted_source', `first bytes ${JSON.stringify(chunk.subarray(0, 48).toString('latin1'))}`);
        s.end(REPLIES.proxyUntrusted);
      };
      sock.prependListener('data', peek);
    }
  };

  const libLog = o.libraryLog;
  const libraryLogger = {
    trace: libLog.trace.bind(libLog), debug: libLog.trace.bind(libLog), info: libLog.debug.bind(libLog),
    warn: libLog.debug.bind(libLog), error: libLog.debug.bind(libLog), fatal: libLog.warn.bind(libLog),
  };
  const settle = <T>(p: T | Promise<T>, use: (v: T) => void, fail: (err: unknown) => void): void => {
    if (p instanceof Promise) p.then(use, fail);
    else use(p);
  };

  const options: SMTPServerOptions = {
    name: o.hostname,
    banner: 'mailrelay',
    secure: o.implicitTls,
    ...(o.tls ? { key: o.tls.key, cert: o.tls.cert } : {}),
    size: o.maxMessageSize,
    hideSize: false,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    hidePIPELINING: false,
    hide8BITMIME: false,
    hideSMTPUTF8: false,
    hideREQUIRETLS: true,
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: true,
    // Enforced per session by offerAuth (RFC 4954 §4); smtp-server's own check is global
    // and only applies when STARTTLS is configured.
    allowInsecureAuth: true,
    disabledCommands: baseDisabled,
    // Connections still in the pre-greeting phase (the pause, reverse DNS, a PROXY header)
    // are not counted by our onConnect limits yet; this backstop bounds a flood of those.
    // Its 421 carries no enhanced code, which RFC 2034 §3 allows in place of a greeting.
    maxClients: o.maxClients,
    socketTimeout: o.socketTimeoutMs,
    closeTimeout: 10_000,
    disableReverseLookup: o.reverseDns === false,
    ...(o.reverseDns ? { resolver: o.reverseDns } : {}),
    // Its lines go to our debug/trace levels; when those are off, none are built at all.
    logger: o.libraryLog.isLevelEnabled('debug') ? libraryLogger : false,
    onConnect(session, cb) {
      const r = h.connect(handleOf(session));
      // The text carries the enhanced code: smtp-server sends onConnect refusals without one.
      cb(r ? smtpError(r) : null);
    },
    onSecure(_socket, session, cb) {
      h.secured(handleOf(session));
      cb();
    },
    onClose(session) {
      const s = handles.get(session);
      if (s) h.closed(s);
    },
    onAuth(auth: SMTPServerAuthentication, session, cb: (err: SMTPServerError | null | undefined, response?: SMTPServerAuthenticationResponse) => void) {
      const attempt: AuthAttempt = {
        method: auth.method, username: auth.username ?? '', password: auth.password ?? '',
        authzid: auth.authzid ?? undefined, authcid: auth.authcid ?? undefined,
      };
      h.auth(handleOf(session), attempt).then(
        (v) => ('user' in v ? cb(null, { user: v.user }) : cb(smtpError(v.refuse))),
        () => cb(smtpError(REPLIES.authUnavailable)),
      );
    },
    onMailFrom(address: SMTPServerAddress, session, cb) {
      const size = address.args ? address.args.SIZE : undefined;
      const declaredSize = typeof size === 'string' ? Number(size) : undefined;
      const v = h.mailFrom(handleOf(session), { address: address.address, declaredSize, smtputf8: session.envelope.smtpUtf8 === true });
      settle(v, (r) => {
        if ('refuse' in r) return cb(smtpError(r.refuse));
        address.address = r.address;
        cb();
      }, () => cb(smtpError(REPLIES.spoolError)));
    },
    onRcptTo(address: SMTPServerAddress, session, cb) {
      const r = h.rcptTo(handleOf(session), { address: address.address, smtputf8: session.envelope.smtpUtf8 === true });
      if ('refuse' in r) return cb(smtpError(r.refuse));
      address.address = r.address;
      cb();
    },
    onData(stream: SMTPServerDataStream, session, cb) {
      const s = handleOf(session);
      const reply = (r: DataReply): void => {
        if ('aborted' in r) cb(new Error('client went away'));
        else if ('refuse' in r) cb(smtpError(r.refuse));
        else cb(null, r.text);
        // After the reply: a 421 of a drain or close must never overtake the 250 (the client would send it again).
        h.afterData(s);
      };
      h.data(s, stream).then(reply, () => reply({ refuse: REPLIES.spoolError }));
    },
  };
  const server = new AdaptedServer(options);
  server.created = hook;
  server.proxy = o.proxy;
  server.on('error', (err: Error) => h.connectionError(err));

  return {
    listen: (port, host) => new Promise<number>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(port, host, () => {
        server.server.off('error', reject);
        const addr = server.server.address();
        resolve(addr && typeof addr === 'object' ? addr.port : port);
      });
    }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    updateTls: (t) => server.updateSecureContext({ key: t.key, cert: t.cert }),
  };
}
