// The inbound SMTP listener: smtp-server wiring only. Decisions live in policy.ts (pure),
// the body plumbing in body.ts, the trace header in received.ts, credentials in users.ts.
//
// What smtp-server does by itself and how we bend it (read from smtp-server 3.21.6,
// dist/esm/smtp-connection.js and smtp-stream.js):
//  - Enhanced status codes (RFC 2034) are off unless hideENHANCEDSTATUSCODES is false.
//    Then `send(code, text, context)` prefixes a code chosen from the reply code and a
//    context name; replies to our handlers' errors get only the generic mapping (554 ->
//    5.6.0, 452 -> 4.2.2, 552 -> 5.2.2), and onConnect refusals get none. So every
//    connection's `send` is wrapped: a text that already starts with an enhanced code of
//    the right class goes out verbatim, everything else keeps smtp-server's mapping. The
//    greeting, the EHLO/HELO replies and 3xx replies carry none, as RFC 2034 §3 says.
//  - DATA ends only on CRLF.CRLF; bare "\n.\n" or "\r.\r" is content (see line-endings.ts
//    for what we then do with it). Dot-unstuffing is done before onData sees the stream.
//  - `size` makes it check MAIL SIZE= (552 5.3.4) and set `stream.sizeExceeded` while
//    the data still flows; we cut the body off then and answer 552 5.3.4 after the dot.
//  - Without STARTTLS configured it allows AUTH over plaintext to anyone; AUTH is offered
//    per session instead (session.disabledCommands), see policy.authOffered.
//  - Its own refusals (early talker: data before the greeting during its 100 ms pause;
//    a command line over 16 KiB; 10 unrecognized commands; its idle timeout) are 421s
//    that close the session; policy.libraryRefusal gives them enhanced codes and reasons.
//  - Its idle timeout (socketTimeout) restarts with every byte and is suspended while a
//    handler of ours runs, so a client trickling a byte a minute would hold a session for
//    ever. Our own clocks bound what the client owes us: a complete command line within
//    commandTimeout of our last reply, the whole DATA phase within dataTimeout.
//  - Commands per session are counted in a wrapper of the connection's _onCommand.
//
// SPF (relay/spf) runs in onMailFrom, per session, under its own time budget: smtp-server
// holds only that session's next command until the callback, every other session goes on.
import os from 'node:os';
import { readFile, stat } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { SMTPServer } from 'smtp-server';
import type {
  SMTPServerAddress, SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerDataStream, SMTPServerError,
  SMTPServerOptions, SMTPServerResolver, SMTPServerSession,
} from 'smtp-server';
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { Logger } from 'pino';
import type { RelayConfig } from '../config.ts';
import type { RelayMetrics } from '../metrics.ts';
import { networkMatcher } from '../net/cidr.ts';
import { buildAuthResultsHeader, claimsAuthservId, createSpfVerifier, identitiesFor } from '../spf/index.ts';
import type { SpfCheckResult, SpfVerifier } from '../spf/index.ts';
import { openMessageBody } from './body.ts';
import {
  REPLIES, authOffered, checkConnect, checkMailFrom, checkMessageSize, checkRcptTo, checkSpf, libraryRefusal, normaliseMailbox,
  replyMessage, sinkFailureReply,
} from './policy.ts';
import type { InboundLimits, PolicyReply } from './policy.ts';
import { ConnectionRateLimiter } from './rate-limit.ts';
import { buildReceivedHeader, withProtocol } from './received.ts';
import { sinkErrorKind } from './types.ts';
import type { InboundEnvelope, InboundRecipient, MessageSink, NotifyKeyword } from './types.ts';
import { loadUserStore } from './users.ts';
import type { PasswordVerifier, UserStore } from './users.ts';

/** What startInbound needs. */
export interface StartInboundOptions {
  /** The `inbound` section of the relay config. */
  config: RelayConfig['inbound'];
  /** Where accepted messages go (the spool). */
  sink: MessageSink;
  metrics: RelayMetrics;
  log: Logger;
  /** Name for the greeting and Received headers when config.hostname is unset (default: the OS hostname). */
  hostname?: string;
  /** A ready user store; default: loaded from config.authUsersFile when set. */
  users?: UserStore;
  /** Extra password verifiers (e.g. argon2) for the users file; bcrypt is built in. */
  passwordVerifiers?: readonly PasswordVerifier[];
  /** Reverse DNS for Received headers: a resolver, or false to skip the lookup. Default: the system resolver. */
  reverseDns?: SMTPServerResolver | false;
  /** Clients that may AUTH without TLS even when requireTlsForAuth (default: loopback addresses). */
  isLocalClient?: (ip: string) => boolean;
  /** Clock (ms), for the Received date and envelope time. */
  now?: () => number;
  /** Longest wait for the sink before answering 451 (default 5 min, under the client's 10 min of RFC 5321 §4.5.3.2.6). */
  acceptTimeoutMs?: number;
  /** How often to look for a renewed TLS certificate (default 60 s). */
  tlsReloadMs?: number;
  /** A ready SPF verifier (tests inject one with a fake DNS); default: built from config.spf when enabled. */
  spf?: SpfVerifier;
}

/** A running inbound listener. */
export interface InboundServer {
  /** The port it listens on (useful with config port 0). */
  readonly port: number;
  /** Graceful drain: new sessions and new transactions get 421 4.3.2; transactions in progress finish. */
  stopAccepting(): void;
  /**
   * Closes the listener and every session with 421 4.3.2. Messages already in DATA get up
   * to `graceMs` (default 10 s) to be stored and answered first; resolves once every sink
   * call has settled and the sockets are gone.
   */
  close(graceMs?: number): Promise<void>;
  /** Sessions currently open (counted against the connection limits). */
  sessions(): number;
  /** Transactions in progress: MAIL accepted and no final reply yet. */
  transactions(): number;
  /** The SPF verifier (its DNS cache and in-flight lookups), when SPF is enabled. */
  readonly spf: SpfVerifier | undefined;
}

interface SessionState {
  conn: SMTPConnection;
  /** Passed onConnect, so counted against the limits and the sessions gauge. */
  counted: boolean;
  ip: string;
  inData: boolean;
  authFailures: number;
  /** Command lines received (maxCommandsPerSession). */
  commands: number;
  /** The client-owes-us clock: fires at commandTimeout/dataTimeout. */
  timer: NodeJS.Timeout | undefined;
  /** When our last reply went out (Date.now()). */
  waitingSince: number;
  /** When the 354 went out (Date.now()). */
  dataSince: number;
  /** Aborted when the session closes: its SPF checks stop at their next lookup. */
  abort: AbortController;
  /** The HELO identity's SPF check, done once per HELO name. */
  heloSpf: { name: string; result: Promise<SpfCheckResult> } | undefined;
  /** SPF results to record in the message of this transaction (RFC 8601 header). */
  spfTag: { transaction: number; results: SpfCheckResult[] } | undefined;
}

const LOOPBACK = networkMatcher(['127.0.0.0/8', '::1/128']);
const ENHANCED_PREFIX = /^([245])\.\d{1,3}\.\d{1,3} /;
// smtp-server's commands we never want: the proxy commands (we sit behind no trusted
// proxy), and sendmail's joke commands.
const ALWAYS_DISABLED = ['XCLIENT', 'XFORWARD', 'WIZ', 'SHELL', 'KILL'];

/** smtp-server lets us hook each connection as it is created, to wrap its `send`. */
class InboundSMTPServer extends SMTPServer {
  onConnection: ((conn: SMTPConnection) => void) | undefined;

  override connect(...args: Parameters<SMTPServer['connect']>): void {
    super.connect(...args);
    // connect() adds the new connection to the set synchronously, before any reply.
    let last: SMTPConnection | undefined;
    for (const c of this.connections) last = c;
    if (last) this.onConnection?.(last);
  }
}

const smtpError = (r: PolicyReply): SMTPServerError =>
  Object.assign(new Error(replyMessage(r)), { responseCode: r.code });

const compact = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

async function readTls(tls: { certFile: string; keyFile: string }): Promise<{ cert: Buffer; key: Buffer; fingerprint: string }> {
  const [cs, ks] = await Promise.all([stat(tls.certFile), stat(tls.keyFile)]);
  const [cert, key] = await Promise.all([readFile(tls.certFile), readFile(tls.keyFile)]);
  return { cert, key, fingerprint: `${cs.ino}:${cs.mtimeMs}:${cs.size}/${ks.ino}:${ks.mtimeMs}:${ks.size}` };
}

/** Starts the inbound SMTP listener on config.host:config.port. */
export async function startInbound(opts: StartInboundOptions): Promise<InboundServer> {
  const { config, sink, metrics } = opts;
  const log = opts.log.child({ component: 'inbound' });
  const now = opts.now ?? Date.now;
  const hostname = config.hostname ?? opts.hostname ?? os.hostname();
  const limits: InboundLimits = config;
  const inRelayNetworks = networkMatcher(config.relayNetworks);
  const isLocalClient = opts.isLocalClient ?? LOOPBACK;
  const acceptTimeoutMs = opts.acceptTimeoutMs ?? 300_000;
  const users = opts.users
    ?? (config.authUsersFile !== undefined
      ? await loadUserStore(config.authUsersFile, { log, verifiers: opts.passwordVerifiers ?? [] })
      : undefined);
  const tlsFiles = config.tls;
  let tlsState = tlsFiles ? await readTls(tlsFiles) : undefined;
  const spfConfig = config.spf;
  const spf = opts.spf ?? (spfConfig.enabled ? createSpfVerifier(spfConfig, { hostname }) : undefined);
  const spfTags = spf !== undefined && spfConfig.policy !== 'record';
  const rateLimiter = new ConnectionRateLimiter({ ratePerSecond: config.connectionRatePerIp, burst: config.connectionBurstPerIp });
  const commandTimeoutMs = config.commandTimeout * 1000;
  const dataTimeoutMs = config.dataTimeout * 1000;
  const contentLimits = {
    maxLineLength: config.maxLineLength,
    maxHeaderSize: config.maxHeaderSize,
    // RFC 8601 §5: fields claiming our authserv-id from outside are forgeries once we add ours.
    ...(spfTags ? { dropField: (name: string, value: string) => claimsAuthservId(name, value, hostname) } : {}),
  };

  const sessions = new Map<string, SessionState>();
  const perIp = new Map<string, number>();
  let counted = 0;
  let draining = false;
  const pendingAccepts = new Set<Promise<unknown>>();
  // Woken whenever a DATA phase ends, so close() can wait for messages in flight.
  let dataEnded: (() => void)[] = [];
  const inDataCount = (): number => [...sessions.values()].filter((s) => s.inData).length;
  const noDataInFlight = async (): Promise<void> => {
    while (inDataCount() > 0) await new Promise<void>((resolve) => dataEnded.push(resolve));
  };

  const baseDisabled = [...ALWAYS_DISABLED, ...(users ? [] : ['AUTH']), ...(tlsFiles && !config.implicitTls ? [] : ['STARTTLS'])];
  const setAuthAvailability = (session: SMTPServerSession): void => {
    const offered = authOffered({
      usersConfigured: users !== undefined,
      secure: session.secure,
      requireTlsForAuth: config.requireTlsForAuth,
      localClient: isLocalClient(session.remoteAddress),
    });
    session.disabledCommands = offered ? baseDisabled : [...baseDisabled, 'AUTH'];
  };

  const reject = (r: PolicyReply, session: SMTPServerSession, extra: Record<string, unknown> = {}): SMTPServerError => {
    log.info({ session: session.id, client: session.remoteAddress, code: r.code, enhanced: r.enhanced, reason: r.reason, ...extra },
      `rejected: ${r.text}`);
    return smtpError(r);
  };

  const isIdle = (s: SessionState): boolean => !s.inData && !s.conn.session.envelope?.mailFrom;
  const kickIfIdle = (s: SessionState): void => {
    if (s.counted && isIdle(s) && !s.conn._closing && !s.conn._closed) s.conn.send(421, replyMessage(REPLIES.shuttingDown));
  };

  /** Ends a session that broke a limit of ours with its 421 (smtp-server closes on any 421). */
  const expire = (s: SessionState, r: PolicyReply): void => {
    if (s.conn._closing || s.conn._closed) return;
    log.info({ session: s.conn.id, client: s.ip, code: r.code, enhanced: r.enhanced, reason: r.reason, commands: s.commands }, `rejected: ${r.text}`);
    s.conn.send(r.code, replyMessage(r));
  };

  const armClientTimer = (s: SessionState, ms: number): void => {
    clearTimeout(s.timer);
    s.timer = setTimeout(() => onClientTimer(s), Math.max(1, ms));
    s.timer.unref();
  };

  // Runs when the client may have run out of time; decides by what the session waits for.
  const onClientTimer = (s: SessionState): void => {
    s.timer = undefined;
    const c = s.conn;
    if (c._closing || c._closed) return;
    if (c._parser && c._parser._dataMode) {
      const left = s.dataSince + dataTimeoutMs - Date.now();
      if (left > 0) armClientTimer(s, left);
      else expire(s, REPLIES.dataTimeout);
      return;
    }
    // Our turn (a handler such as the SPF check runs, or the sink stores a message): the
    // client waits for us, and our next reply starts its clock again.
    if (c._handlerPending || c._dataStream) return;
    const left = s.waitingSince + commandTimeoutMs - Date.now();
    if (left > 0) armClientTimer(s, left);
    else expire(s, REPLIES.commandTimeout);
  };

  /** After a reply: the client owes us the next command, or after 354 the message. */
  const afterReply = (s: SessionState, code: number): void => {
    if (!s.counted || s.conn._closing || s.conn._closed) return;
    const t = Date.now();
    if (code === 354) {
      s.dataSince = t;
      armClientTimer(s, dataTimeoutMs);
    } else {
      s.waitingSince = t;
      armClientTimer(s, commandTimeoutMs);
    }
  };

  const hookConnection = (conn: SMTPConnection): void => {
    const s: SessionState = {
      conn, counted: false, ip: conn.remoteAddress, inData: false, authFailures: 0, commands: 0, timer: undefined,
      waitingSince: Date.now(), dataSince: 0, abort: new AbortController(), heloSpf: undefined, spfTag: undefined,
    };
    sessions.set(conn.id, s);
    const send = conn.send.bind(conn);
    conn.send = (code, data, context) => {
      if (code >= 400) metrics.inboundRejections.inc({ code: String(code) });
      if (typeof data === 'string') {
        const m = ENHANCED_PREFIX.exec(data);
        // Ours: the text carries its enhanced code; `false` stops smtp-server adding another.
        if (m && Number(m[1]) === Math.floor(code / 100)) {
          send(code, data, false);
          afterReply(s, code);
          return;
        }
        // smtp-server's own refusals: the abuse-related ones get our enhanced code and reason,
        // the rest (syntax, sequence) keep its mapping; logged here, once.
        if (code >= 400) {
          const mapped = libraryRefusal(code, data);
          log.info({ session: conn.id, client: conn.remoteAddress, code, reason: mapped?.reason ?? 'protocol', commands: s.commands },
            `rejected: ${mapped?.text ?? data}`);
          if (mapped) {
            send(mapped.code, replyMessage(mapped), false);
            return;
          }
        }
      }
      send(code, data, context);
      afterReply(s, code);
    };
    const onCommand = conn._onCommand.bind(conn);
    conn._onCommand = (command, callback) => {
      if (++s.commands > config.maxCommandsPerSession) {
        // Not passed on: the parser stays parked and the 421 closes the connection.
        expire(s, REPLIES.tooManyCommands);
        return;
      }
      onCommand(command, callback);
    };
  };

  const onConnect = (session: SMTPServerSession, cb: (err?: SMTPServerError | null) => void): void => {
    const s = sessions.get(session.id);
    const ip = session.remoteAddress;
    // Every attempt spends a token, refused ones too; our own networks are not limited.
    const rateLimited = !inRelayNetworks(ip) && !rateLimiter.take(ip, Date.now());
    const r = checkConnect({ draining, open: counted, openFromIp: perIp.get(ip) ?? 0, rateLimited }, limits);
    if (r || !s) {
      // The text carries the enhanced code: smtp-server sends onConnect refusals without one.
      cb(reject(r ?? REPLIES.spoolError, session));
      return;
    }
    s.counted = true;
    counted++;
    perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
    metrics.inboundSessions.inc();
    setAuthAvailability(session);
    cb();
  };

  const onClose = (session: SMTPServerSession): void => {
    const s = sessions.get(session.id);
    sessions.delete(session.id);
    if (s) {
      clearTimeout(s.timer);
      s.timer = undefined;
      s.abort.abort();
    }
    if (!s?.counted) return;
    counted--;
    const n = (perIp.get(s.ip) ?? 1) - 1;
    if (n > 0) perIp.set(s.ip, n);
    else perIp.delete(s.ip);
    metrics.inboundSessions.dec();
  };

  const onSecure = (_socket: unknown, session: SMTPServerSession, cb: (err?: SMTPServerError | null) => void): void => {
    setAuthAvailability(session);
    cb();
  };

  const onAuth = (
    auth: SMTPServerAuthentication, session: SMTPServerSession,
    cb: (err: SMTPServerError | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
  ): void => {
    const s = sessions.get(session.id);
    const username = auth.username ?? '';
    const fail = (r: PolicyReply): void => {
      // A 421 after repeated failures ends the session (smtp-server closes on any 421),
      // so one connection cannot try passwords forever.
      const failures = r === REPLIES.authFailed && s ? ++s.authFailures : 0;
      cb(reject(failures >= 3 ? REPLIES.tooManyAuthFailures : r, session, { user: username, method: auth.method }));
    };
    if (!users || (auth.method !== 'PLAIN' && auth.method !== 'LOGIN')) return fail(REPLIES.authFailed);
    // RFC 4616 §2: an authzid other than the authcid asks to act as someone else; we have no such roles.
    if (auth.authzid && auth.authcid && auth.authzid !== auth.authcid) return fail(REPLIES.authFailed);
    users.verify(username, auth.password ?? '').then((result) => {
      if (result === 'ok') {
        log.info({ session: session.id, client: session.remoteAddress, user: username, method: auth.method }, 'authenticated');
        cb(null, { user: username });
        return;
      }
      fail(result === 'unavailable' ? REPLIES.authUnavailable : REPLIES.authFailed);
    }, (err: unknown) => {
      log.error({ session: session.id, err }, 'password check failed');
      fail(REPLIES.authUnavailable);
    });
  };

  const onMailFrom = (address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: SMTPServerError | null) => void): void => {
    const size = address.args ? address.args.SIZE : undefined;
    const declaredSize = typeof size === 'string' ? Number(size) : undefined;
    const r = checkMailFrom({ heloName: session.hostNameAppearsAs || '', draining, declaredSize }, limits);
    if (r) return cb(reject(r, session, { from: address.address }));
    const mb = normaliseMailbox(address.address, 'sender', session.envelope.smtpUtf8 === true);
    if (!mb.ok) return cb(reject(mb.reply, session, { from: address.address }));
    address.address = mb.address;
    const s = sessions.get(session.id);
    if (s) s.spfTag = undefined;
    if (!spf || !s || (spfConfig.skipTrusted && (inRelayNetworks(session.remoteAddress) || Boolean(session.user)))) return cb();
    verifySender(spf, s, session, mb.address).then((r) => cb(r ? reject(r.reply, session, r.facts) : null), (err: unknown) => {
      // checks never reject; this is a bug of ours, and the client may try again
      log.error({ session: session.id, err }, 'SPF check failed');
      cb(reject(REPLIES.spfTempError, session, { from: mb.address }));
    });
  };

  /** Runs the transaction's SPF checks; resolves with the refusal, or null after noting the results for the header. */
  const verifySender = async (
    v: SpfVerifier, s: SessionState, session: SMTPServerSession, sender: string,
  ): Promise<{ reply: PolicyReply; facts: Record<string, unknown> } | null> => {
    const helo = session.hostNameAppearsAs || '';
    const ids = identitiesFor({ ip: session.remoteAddress, sender, helo, checkHelo: spfConfig.checkHelo });
    const deadline = Date.now() + spfConfig.checkBudgetMs;
    const signal = s.abort.signal;
    const counted = (p: Promise<SpfCheckResult>): Promise<SpfCheckResult> => p.then((r) => {
      metrics.spfResults.inc({ result: r.result });
      return r;
    });
    const heloId = ids.helo;
    if (heloId && s.heloSpf?.name !== helo) s.heloSpf = { name: helo, result: counted(v.checker.check({ ...heloId, deadline, signal })) };
    const [mailfrom, heloResult] = await Promise.all([
      counted(v.checker.check({ ...ids.mailfrom, deadline, signal })),
      heloId ? s.heloSpf?.result : undefined,
    ]);
    const decision = checkSpf({ mailfrom: mailfrom.result, helo: heloResult?.result }, spfConfig);
    const results = heloResult ? [mailfrom, heloResult] : [mailfrom];
    const facts = {
      from: sender,
      spf: results.map((r) => ({ identity: r.identity, domain: r.domain, result: r.result, ms: r.ms, lookups: r.lookups, comment: r.comment })),
    };
    if (decision.reply) return { reply: decision.reply, facts };
    log.info({ session: session.id, client: session.remoteAddress, ...facts }, 'SPF checked');
    s.spfTag = decision.tag ? { transaction: session.transaction, results } : undefined;
    return null;
  };

  const onRcptTo = (address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: SMTPServerError | null) => void): void => {
    const mb = normaliseMailbox(address.address, 'recipient', session.envelope.smtpUtf8 === true);
    const r = mb.ok
      ? checkRcptTo({
        inRelayNetworks: inRelayNetworks(session.remoteAddress),
        authenticated: Boolean(session.user),
        recipientsSoFar: session.envelope.rcptTo.length,
      }, limits)
      : mb.reply;
    if (r || !mb.ok) return cb(reject(r ?? REPLIES.badRecipient, session, { rcpt: address.address }));
    address.address = mb.address;
    cb();
  };

  const envelopeOf = (session: SMTPServerSession, receivedAt: number): InboundEnvelope => {
    const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    // smtp-server folds repeats case-insensitively by the address as sent; two spellings of
    // one IDN domain only meet after normalisation, so fold again.
    const seen = new Set<string>();
    const recipients: InboundRecipient[] = [];
    for (const r of session.envelope.rcptTo) {
      const key = r.address.toLowerCase();
      if (seen.has(key)) continue;
      seen.add(key);
      recipients.push(compact({
        address: r.address,
        notify: r.dsn?.notify as NotifyKeyword[] | undefined,
        orcpt: r.dsn?.orcpt,
      }));
    }
    const ret = session.envelope.dsn?.ret;
    return compact<InboundEnvelope>({
      from,
      recipients,
      receivedAt,
      clientAddress: session.remoteAddress,
      heloName: session.hostNameAppearsAs || undefined,
      authUser: session.user ? String(session.user) : undefined,
      ret: ret === 'FULL' || ret === 'HDRS' ? ret : undefined,
      envid: session.envelope.dsn?.envid ?? undefined,
      smtputf8: session.envelope.smtpUtf8 === true ? true : undefined,
      bodyType: session.envelope.bodyType === '8bitmime' ? '8BITMIME' : '7BIT',
    });
  };

  const acceptWithTimeout = (envelope: InboundEnvelope, body: AsyncIterable<Buffer>, sessionId: string): Promise<{ id: string }> => {
    const p = sink.accept(envelope, body);
    pendingAccepts.add(p);
    const untrack = (): void => {
      pendingAccepts.delete(p);
    };
    p.then(untrack, untrack);
    return new Promise((resolve, reject_) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        reject_(Object.assign(new Error(`sink did not answer within ${acceptTimeoutMs} ms`), { kind: 'io' }));
      }, acceptTimeoutMs);
      timer.unref();
      p.then((v) => {
        clearTimeout(timer);
        // At-least-once: the client was told 451 and will send it again.
        if (timedOut) log.warn({ session: sessionId, queueId: v.id }, 'sink stored a message after we answered 451; expect a duplicate');
        resolve(v);
      }, (e: unknown) => {
        clearTimeout(timer);
        reject_(e);
      });
    });
  };

  const onData = (
    stream: SMTPServerDataStream, session: SMTPServerSession,
    cb: (err?: SMTPServerError | null, message?: string) => void,
  ): void => {
    const s = sessions.get(session.id);
    if (s) s.inData = true;
    const receivedAt = now();
    const envelope = envelopeOf(session, receivedAt);
    const txId = `${session.id}.${session.transaction}`;
    const tls = session.tlsOptions ? { version: session.tlsOptions.version, cipher: session.tlsOptions.standardName ?? session.tlsOptions.name } : undefined;
    const header = buildReceivedHeader({
      heloName: session.hostNameAppearsAs || '',
      clientAddress: session.remoteAddress,
      clientHostname: session.clientHostname,
      hostname,
      protocol: withProtocol(session.openingCommand, session.secure, Boolean(session.user)),
      tls,
      id: txId,
      recipients: envelope.recipients.map((r) => r.address),
      date: receivedAt,
    });
    const tag = s?.spfTag && s.spfTag.transaction === session.transaction ? s.spfTag.results : undefined;
    // RFC 8601 §5: Authentication-Results goes on top, with the trace fields.
    const authResults = tag ? buildAuthResultsHeader(hostname, tag) : '';
    const msg = openMessageBody(stream, Buffer.from(authResults + header, 'utf8'), contentLimits);
    const facts = { session: session.id, client: session.remoteAddress, from: envelope.from, recipients: envelope.recipients.length };

    const finish = async (): Promise<void> => {
      let stored: { id: string } | undefined;
      let failure: unknown;
      try {
        stored = await acceptWithTimeout(envelope, msg.body, session.id);
      } catch (e) {
        failure = e;
      }
      msg.discard();
      const outcome = await msg.done;
      if (outcome === 'aborted') {
        // Nobody to answer. A sink that stored it anyway only leads to a duplicate when the client retries.
        log.info({ ...facts, queueId: stored?.id }, 'client went away during DATA');
        cb(new Error('client went away'));
        return;
      }
      const tooBig = outcome === 'too_big' ? REPLIES.tooBig : checkMessageSize(stream.byteLength, limits);
      const broken = outcome === 'line_too_long' ? REPLIES.lineTooLong : outcome === 'header_too_big' ? REPLIES.headerTooBig : null;
      if (!tooBig && broken) {
        if (stored) log.error({ ...facts, queueId: stored.id }, 'sink stored a message although its body failed');
        metrics.inboundMessages.inc({ result: 'rejected' });
        cb(reject(broken, session, { ...facts, maxLineLength: config.maxLineLength, maxHeaderSize: config.maxHeaderSize }));
        return;
      }
      if (tooBig) {
        if (stored) log.error({ ...facts, queueId: stored.id }, 'sink stored an oversized message although its body failed');
        metrics.inboundMessages.inc({ result: 'rejected' });
        cb(reject(tooBig, session, { ...facts, size: stream.byteLength, limit: limits.maxMessageSize }));
        return;
      }
      if (stored && msg.consumed()) {
        metrics.inboundMessages.inc({ result: 'accepted' });
        metrics.inboundBytes.inc(msg.bytes());
        log.info({ ...facts, queueId: stored.id, size: msg.bytes(), authUser: envelope.authUser, tls: session.secure }, 'message accepted');
        cb(null, `2.0.0 Ok: queued as ${stored.id}`);
        return;
      }
      if (stored) failure = new Error('sink resolved without reading the whole body');
      const kind = sinkErrorKind(failure);
      const r = sinkFailureReply(kind);
      metrics.inboundMessages.inc({ result: 'tempfail' });
      log.warn({ ...facts, err: failure, kind }, 'sink could not store the message');
      cb(reject(r, session, facts));
    };
    finish()
      .catch((err: unknown) => {
        log.error({ ...facts, err }, 'inbound DATA handler failed');
        cb(smtpError(REPLIES.spoolError));
      })
      .finally(() => {
        if (s) s.inData = false;
        const wake = dataEnded;
        dataEnded = [];
        for (const w of wake) w();
        if (draining && s) setImmediate(() => kickIfIdle(s));
      });
  };

  const libLog = opts.log.child({ component: 'smtp-server' });
  // smtp-server logs every connection at info; ours are the lines that matter, so its go one level down.
  const libLogger = {
    trace: libLog.trace.bind(libLog), debug: libLog.trace.bind(libLog), info: libLog.debug.bind(libLog),
    warn: libLog.debug.bind(libLog), error: libLog.debug.bind(libLog), fatal: libLog.warn.bind(libLog),
  };

  const options: SMTPServerOptions = {
    name: hostname,
    banner: 'mailrelay',
    secure: config.implicitTls,
    ...(tlsState ? { key: tlsState.key, cert: tlsState.cert } : {}),
    size: config.maxMessageSize,
    hideSize: false,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    hidePIPELINING: false,
    hide8BITMIME: false,
    hideSMTPUTF8: false,
    hideREQUIRETLS: true,
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: true,
    // Enforced per session by setAuthAvailability (RFC 4954 §4); smtp-server's own check
    // is global and only applies when STARTTLS is configured.
    allowInsecureAuth: true,
    disabledCommands: baseDisabled,
    // The limits are enforced in onConnect (with enhanced codes, per IP). Connections still
    // in smtp-server's pre-greeting phase (early-talker delay, reverse DNS) are not counted
    // there yet; this backstop bounds a flood of those. Its 421 carries no enhanced code,
    // which RFC 2034 §3 allows in place of a greeting.
    maxClients: config.maxConnections * 2,
    socketTimeout: config.socketTimeout * 1000,
    closeTimeout: 10_000,
    disableReverseLookup: opts.reverseDns === false,
    ...(opts.reverseDns ? { resolver: opts.reverseDns } : {}),
    logger: libLogger,
    onConnect, onClose, onSecure, onAuth, onMailFrom, onRcptTo, onData,
  };
  if (config.implicitTls && !tlsState) throw new Error('inbound.implicitTls needs inbound.tls.certFile and keyFile');
  const server = new InboundSMTPServer(options);
  server.onConnection = hookConnection;
  server.on('error', (err: Error) => {
    // Errors of single connections (resets, failed handshakes); the listener itself reports through listen().
    log.debug({ err }, 'smtp connection error');
  });

  await new Promise<void>((resolve, reject_) => {
    server.server.once('error', reject_);
    server.listen(config.port, config.host, () => {
      server.server.off('error', reject_);
      resolve();
    });
  });
  const addr = server.server.address();
  const port = addr && typeof addr === 'object' ? addr.port : config.port;
  log.info({ host: config.host, port, implicitTls: config.implicitTls, starttls: Boolean(tlsFiles) && !config.implicitTls, auth: Boolean(users) },
    'inbound SMTP listening');

  // cert-manager renews the certificate in place (Secret update, symlink swap): pick it up.
  let tlsTimer: NodeJS.Timeout | undefined;
  if (tlsFiles) {
    tlsTimer = setInterval(() => {
      readTls(tlsFiles).then((next) => {
        if (next.fingerprint === tlsState?.fingerprint) return;
        // Half-written renewals (new key, old cert) throw here, before smtp-server's options are touched.
        createSecureContext({ key: next.key, cert: next.cert });
        server.updateSecureContext({ key: next.key, cert: next.cert });
        tlsState = next;
        log.info({ certFile: tlsFiles.certFile }, 'TLS certificate reloaded');
      }).catch((err: unknown) => log.warn({ err }, 'TLS certificate reload failed; keeping the current one'));
    }, opts.tlsReloadMs ?? 60_000);
    tlsTimer.unref();
  }

  let closing: Promise<void> | undefined;
  return {
    port,
    stopAccepting() {
      if (draining) return;
      draining = true;
      log.info({ sessions: counted }, 'inbound draining: refusing new sessions and transactions');
      for (const s of sessions.values()) kickIfIdle(s);
    },
    close(graceMs = 10_000) {
      closing ??= (async () => {
        draining = true;
        if (tlsTimer) clearInterval(tlsTimer);
        const shut = (s: SessionState): void => {
          if (!s.conn._closing && !s.conn._closed) s.conn.send(421, replyMessage(REPLIES.shuttingDown));
        };
        for (const s of sessions.values()) if (!s.inData) shut(s);
        // A 421 in place of the 250 for a message the sink then stores makes the client send it twice.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([noDataInFlight(), new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        })]);
        clearTimeout(timer);
        for (const s of sessions.values()) shut(s);
        await Promise.allSettled([...pendingAccepts]);
        await new Promise<void>((resolve) => server.close(() => resolve()));
        log.info('inbound SMTP closed');
      })();
      return closing;
    },
    sessions: () => counted,
    transactions: () => [...sessions.values()].filter((s) => s.counted && !isIdle(s)).length,
    spf,
  };
}
