// The inbound SMTP listener: wiring only. smtp-server is behind adapter.ts; decisions are
// pure functions in policy.ts (per command) and session.ts (per session); the body
// plumbing is body.ts, the trace header received.ts, credentials users.ts. What is left
// here is state (sessions, per-IP counts, the drain flag), clocks, the sink and the logs.
//
// SPF (relay/spf) runs in mailFrom, per session, under its own time budget: smtp-server
// holds only that session's next command until the verdict, every other session goes on.
import os from 'node:os';
import { readFile, stat } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { RelayConfig } from '../config.ts';
import type { RelayMetrics } from '../metrics.ts';
import { networkMatcher } from '../net/cidr.ts';
import { buildAuthResultsHeader, claimsAuthservId, createSpfVerifier, identitiesFor } from '../spf/index.ts';
import type { SpfCheckResult, SpfVerifier } from '../spf/index.ts';
import { createSmtpListener } from './adapter.ts';
import type { AddressVerdict, DataReply, ReverseResolver, SmtpHandlers, SmtpSession } from './adapter.ts';
import { openMessageBody } from './body.ts';
import type { DataStream } from './body.ts';
import { REPLIES, authOffered, checkConnect, checkMailFrom, checkRcptTo, checkSpf, normaliseMailbox } from './policy.ts';
import type { InboundLimits, PolicyReply } from './policy.ts';
import { ConnectionRateLimiter } from './rate-limit.ts';
import { cachingReverseResolver, systemReverse } from './reverse-dns.ts';
import { buildReceivedHeader, withProtocol } from './received.ts';
import {
  authAllowed, authFailure, buildEnvelope, checkClientClock, checkCommandCount, clockAfterReply, dataVerdict, greetingDelayFor,
} from './session.ts';
import type { ClientClock } from './session.ts';
import { sinkErrorKind } from './types.ts';
import type { InboundEnvelope, MessageSink } from './types.ts';
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
  reverseDns?: ReverseResolver | false;
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
  /** Ends stopAccepting (a hold drain undone): new sessions and transactions are served again. False once close() was called. */
  resumeAccepting(): boolean;
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

/** The listener's own state of one session. */
interface SessionState {
  /** The client is on relayNetworks (decided once: a session's address does not change). */
  trusted: boolean;
  /** Passed onConnect, so counted against the limits and the sessions gauge. */
  counted: boolean;
  inData: boolean;
  authFailures: number;
  /** Command lines received (maxCommandsPerSession). */
  commands: number;
  /** The client-owes-us clock: fires at commandTimeout/dataTimeout. */
  timer: NodeJS.Timeout | undefined;
  clock: ClientClock;
  /** Aborted when the session closes: its SPF checks stop at their next lookup. */
  abort: AbortController;
  /** The HELO identity's SPF check, done once per HELO name. */
  heloSpf: { name: string; result: Promise<SpfCheckResult> } | undefined;
  /** SPF results to record in the message of this transaction (RFC 8601 header). */
  spfTag: { transaction: number; results: SpfCheckResult[] } | undefined;
}
type Session = SmtpSession<SessionState>;

const LOOPBACK = networkMatcher(['127.0.0.0/8', '::1/128']);

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
  const timeouts = { commandTimeoutMs: config.commandTimeout * 1000, dataTimeoutMs: config.dataTimeout * 1000 };
  const greetingDelayMs = Math.round(config.greetingDelay * 1000);
  const contentLimits = {
    maxLineLength: config.maxLineLength,
    maxHeaderSize: config.maxHeaderSize,
    // RFC 8601 §5: fields claiming our authserv-id from outside are forgeries once we add ours.
    ...(spfTags ? { dropField: (name: string, value: string) => claimsAuthservId(name, value, hostname) } : {}),
  };

  const sessions = new Set<Session>();
  const perIp = new Map<string, number>();
  let counted = 0;
  let draining = false;
  const pendingAccepts = new Set<Promise<unknown>>();
  // Woken whenever a DATA phase ends, so close() can wait for messages in flight.
  let dataEnded: (() => void)[] = [];
  const inDataCount = (): number => [...sessions].filter((s) => s.state.inData).length;
  const noDataInFlight = async (): Promise<void> => {
    while (inDataCount() > 0) await new Promise<void>((resolve) => dataEnded.push(resolve));
  };

  const setAuthAvailability = (s: Session): void => {
    s.offerAuth(authOffered({
      usersConfigured: users !== undefined,
      secure: s.secure(),
      requireTlsForAuth: config.requireTlsForAuth,
      localClient: isLocalClient(s.remoteAddress),
    }));
  };

  /** Logs a refusal of ours and returns the verdict that sends it. */
  const refuse = (r: PolicyReply, s: Session, extra: Record<string, unknown> = {}): { refuse: PolicyReply } => {
    log.info({ session: s.id, client: s.remoteAddress, code: r.code, enhanced: r.enhanced, reason: r.reason, ...extra }, `rejected: ${r.text}`);
    return { refuse: r };
  };

  const isIdle = (s: Session): boolean => !s.state.inData && !s.inTransaction();
  const kickIfIdle = (s: Session): void => {
    if (s.state.counted && isIdle(s)) s.end(REPLIES.shuttingDown);
  };

  /** Ends a session that broke a limit of ours with its 421 (smtp-server closes on any 421). */
  const expire = (s: Session, r: PolicyReply): void => {
    if (s.closed()) return;
    log.info({ session: s.id, client: s.remoteAddress, code: r.code, enhanced: r.enhanced, reason: r.reason, commands: s.state.commands }, `rejected: ${r.text}`);
    s.end(r);
  };

  const armClientTimer = (s: Session, ms: number): void => {
    clearTimeout(s.state.timer);
    s.state.timer = setTimeout(() => onClientTimer(s), Math.max(1, ms));
    s.state.timer.unref();
  };
  const onClientTimer = (s: Session): void => {
    s.state.timer = undefined;
    if (s.closed()) return;
    const v = checkClientClock(s.turn(), s.state.clock, Date.now(), timeouts);
    if (!v) return;
    if ('expire' in v) expire(s, v.expire);
    else armClientTimer(s, v.recheckInMs);
  };

  const handlers: SmtpHandlers<SessionState> = {
    open: (s) => ({
      trusted: inRelayNetworks(s.remoteAddress),
      counted: false, inData: false, authFailures: 0, commands: 0, timer: undefined,
      clock: { waitingSince: Date.now(), dataSince: 0 }, abort: new AbortController(), heloSpf: undefined, spfTag: undefined,
    }),

    accepted: (s) => {
      sessions.add(s);
      return greetingDelayFor(s.state.trusted, greetingDelayMs);
    },

    connect: (s) => {
      const ip = s.remoteAddress;
      // Every attempt spends a token, refused ones too; our own networks are not limited.
      const rateLimited = !s.state.trusted && !rateLimiter.take(ip, Date.now());
      const r = checkConnect({ draining, open: counted, openFromIp: perIp.get(ip) ?? 0, rateLimited }, limits);
      if (r) {
        refuse(r, s, s.peerAddress !== ip ? { peer: s.peerAddress } : {});
        return r;
      }
      s.state.counted = true;
      counted++;
      perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
      metrics.inboundSessions.inc();
      setAuthAvailability(s);
      return null;
    },

    closed: (s) => {
      sessions.delete(s);
      const st = s.state;
      clearTimeout(st.timer);
      st.timer = undefined;
      st.abort.abort();
      if (!st.counted) return;
      st.counted = false;
      counted--;
      const n = (perIp.get(s.remoteAddress) ?? 1) - 1;
      if (n > 0) perIp.set(s.remoteAddress, n);
      else perIp.delete(s.remoteAddress);
      metrics.inboundSessions.dec();
    },

    secured: (s) => setAuthAvailability(s),

    command: (s) => {
      const r = checkCommandCount(++s.state.commands, config);
      if (r) expire(s, r);
      return r;
    },

    replied: (s, code, library) => {
      if (code >= 400) metrics.inboundRejections.inc({ code: String(code) });
      // smtp-server's own refusals are logged here, once: the abuse-related ones with our
      // reason, the rest (syntax, sequence) as 'protocol'.
      if (library && code >= 400) {
        log.info({ session: s.id, client: s.remoteAddress, code, reason: library.refusal?.reason ?? 'protocol', commands: s.state.commands },
          `rejected: ${library.refusal?.text ?? library.text}`);
      }
      if (library?.refusal || !s.state.counted || s.closed()) return;
      const next = clockAfterReply(code, s.state.clock, Date.now(), timeouts);
      s.state.clock = next.clock;
      armClientTimer(s, next.armMs);
    },

    auth: async (s, a) => {
      const fail = (result: 'failed' | 'unavailable'): { refuse: PolicyReply } => {
        const f = authFailure(result, s.state.authFailures);
        s.state.authFailures = f.failures;
        return refuse(f.reply, s, { user: a.username, method: a.method });
      };
      if (!users || !authAllowed(a.method, a.authzid, a.authcid)) return fail('failed');
      try {
        const result = await users.verify(a.username, a.password);
        if (result !== 'ok') return fail(result === 'unavailable' ? 'unavailable' : 'failed');
        log.info({ session: s.id, client: s.remoteAddress, user: a.username, method: a.method }, 'authenticated');
        return { user: a.username };
      } catch (err) {
        log.error({ session: s.id, err }, 'password check failed');
        return fail('unavailable');
      }
    },

    mailFrom: (s, m): AddressVerdict | Promise<AddressVerdict> => {
      const r = checkMailFrom({ heloName: s.heloName(), draining, declaredSize: m.declaredSize }, limits);
      if (r) return refuse(r, s, { from: m.address });
      const mb = normaliseMailbox(m.address, 'sender', m.smtputf8);
      if (!mb.ok) return refuse(mb.reply, s, { from: m.address });
      s.state.spfTag = undefined;
      if (!spf || (spfConfig.skipTrusted && (s.state.trusted || s.user() !== undefined))) return { address: mb.address };
      return verifySender(spf, s, mb.address).then(
        (v) => (v ? refuse(v.reply, s, v.facts) : { address: mb.address }),
        (err: unknown) => {
          // checks never reject; this is a bug of ours, and the client may try again
          log.error({ session: s.id, err }, 'SPF check failed');
          return refuse(REPLIES.spfTempError, s, { from: mb.address });
        },
      );
    },

    rcptTo: (s, rc) => {
      const mb = normaliseMailbox(rc.address, 'recipient', rc.smtputf8);
      if (!mb.ok) return refuse(mb.reply, s, { rcpt: rc.address });
      const r = checkRcptTo({
        inRelayNetworks: s.state.trusted,
        authenticated: s.user() !== undefined,
        recipientsSoFar: s.recipientCount(),
      }, limits);
      return r ? refuse(r, s, { rcpt: rc.address }) : { address: mb.address };
    },

    data: (s, stream) => receiveMessage(s, stream),

    afterData: (s) => {
      s.state.inData = false;
      const wake = dataEnded;
      dataEnded = [];
      for (const w of wake) w();
      if (draining) setImmediate(() => kickIfIdle(s));
    },

    connectionError: (err) => {
      // Errors of single connections (resets, failed handshakes); the listener itself reports through listen().
      log.debug({ err }, 'smtp connection error');
    },
  };

  /** Runs the transaction's SPF checks; resolves with the refusal, or null after noting the results for the header. */
  const verifySender = async (v: SpfVerifier, s: Session, sender: string): Promise<{ reply: PolicyReply; facts: Record<string, unknown> } | null> => {
    const st = s.state;
    const helo = s.heloName();
    const ids = identitiesFor({ ip: s.remoteAddress, sender, helo, checkHelo: spfConfig.checkHelo });
    const deadline = Date.now() + spfConfig.checkBudgetMs;
    const signal = st.abort.signal;
    const countedCheck = (p: Promise<SpfCheckResult>): Promise<SpfCheckResult> => p.then((r) => {
      metrics.spfResults.inc({ result: r.result });
      return r;
    });
    const heloId = ids.helo;
    if (heloId && st.heloSpf?.name !== helo) st.heloSpf = { name: helo, result: countedCheck(v.checker.check({ ...heloId, deadline, signal })) };
    const [mailfrom, heloResult] = await Promise.all([
      countedCheck(v.checker.check({ ...ids.mailfrom, deadline, signal })),
      heloId ? st.heloSpf?.result : undefined,
    ]);
    const decision = checkSpf({ mailfrom: mailfrom.result, helo: heloResult?.result }, spfConfig);
    const results = heloResult ? [mailfrom, heloResult] : [mailfrom];
    const facts = {
      from: sender,
      spf: results.map((r) => ({ identity: r.identity, domain: r.domain, result: r.result, ms: r.ms, lookups: r.lookups, comment: r.comment })),
    };
    if (decision.reply) return { reply: decision.reply, facts };
    log.info({ session: s.id, client: s.remoteAddress, ...facts }, 'SPF checked');
    st.spfTag = decision.tag ? { transaction: s.transaction(), results } : undefined;
    return null;
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

  /** One message: Received (and Authentication-Results) header, the sink, then the reply after the final dot. */
  const receiveMessage = async (s: Session, stream: DataStream): Promise<DataReply> => {
    s.state.inData = true;
    const receivedAt = now();
    const envelope = buildEnvelope(s.envelope(), { clientAddress: s.remoteAddress, heloName: s.heloName(), authUser: s.user() }, receivedAt);
    const trace = s.traceFacts();
    const header = buildReceivedHeader({
      heloName: s.heloName(),
      clientAddress: s.remoteAddress,
      clientHostname: trace.clientHostname,
      hostname,
      protocol: withProtocol(trace.openingCommand, s.secure(), s.user() !== undefined),
      tls: trace.tls,
      id: `${s.id}.${s.transaction()}`,
      recipients: envelope.recipients.map((r) => r.address),
      date: receivedAt,
    });
    const tag = s.state.spfTag && s.state.spfTag.transaction === s.transaction() ? s.state.spfTag.results : undefined;
    // RFC 8601 §5: Authentication-Results goes on top, with the trace fields.
    const authResults = tag ? buildAuthResultsHeader(hostname, tag) : '';
    const msg = openMessageBody(stream, Buffer.from(authResults + header, 'utf8'), contentLimits);
    const facts = { session: s.id, client: s.remoteAddress, from: envelope.from, recipients: envelope.recipients.length };
    try {
      let stored: { id: string } | undefined;
      let failure: unknown;
      try {
        stored = await acceptWithTimeout(envelope, msg.body, s.id);
      } catch (e) {
        failure = e;
      }
      msg.discard();
      const outcome = await msg.done;
      const v = dataVerdict({
        outcome, stored: stored !== undefined, consumed: msg.consumed(), receivedBytes: stream.byteLength ?? 0, failureKind: sinkErrorKind(failure),
      }, limits);
      switch (v.kind) {
        case 'aborted':
          // Nobody to answer. A sink that stored it anyway only leads to a duplicate when the client retries.
          log.info({ ...facts, queueId: stored?.id }, 'client went away during DATA');
          return { aborted: true };
        case 'rejected':
          if (v.storedAnyway) log.error({ ...facts, queueId: stored?.id }, 'sink stored a message although its body failed');
          metrics.inboundMessages.inc({ result: 'rejected' });
          return refuse(v.reply, s, { ...facts, size: stream.byteLength, limit: limits.maxMessageSize, maxLineLength: config.maxLineLength, maxHeaderSize: config.maxHeaderSize });
        case 'accepted':
          metrics.inboundMessages.inc({ result: 'accepted' });
          metrics.inboundBytes.inc(msg.bytes());
          log.info({ ...facts, queueId: stored!.id, size: msg.bytes(), authUser: envelope.authUser, tls: s.secure() }, 'message accepted');
          return { text: `2.0.0 Ok: queued as ${stored!.id}` };
        case 'tempfail': {
          const err = v.unreadBody ? new Error('sink resolved without reading the whole body') : failure;
          metrics.inboundMessages.inc({ result: 'tempfail' });
          log.warn({ ...facts, err, kind: sinkErrorKind(err) }, 'sink could not store the message');
          return refuse(v.reply, s, facts);
        }
      }
    } catch (err) {
      log.error({ ...facts, err }, 'inbound DATA handler failed');
      return { refuse: REPLIES.spoolError };
    }
  };

  const proxyConfig = config.proxyProtocol;
  const proxyTrusted = proxyConfig ? networkMatcher(proxyConfig.trustedNetworks) : undefined;
  const listener = createSmtpListener<SessionState>({
    hostname,
    implicitTls: config.implicitTls,
    tls: tlsState ? { key: tlsState.key, cert: tlsState.cert } : undefined,
    auth: users !== undefined,
    maxMessageSize: config.maxMessageSize,
    maxClients: config.maxConnections * 2,
    socketTimeoutMs: config.socketTimeout * 1000,
    // Cached: a relay's few clients connect again and again, often once per message.
    reverseDns: opts.reverseDns === false ? false : cachingReverseResolver(opts.reverseDns ?? systemReverse),
    libraryLog: opts.log.child({ component: 'smtp-server' }),
    proxy: proxyConfig && proxyTrusted ? {
      trusted: proxyTrusted,
      headerTimeoutMs: proxyConfig.headerTimeout * 1000,
      refused: (peer, why, detail) => {
        metrics.inboundProxyRefusals.inc({ reason: why });
        log.warn({ peer, reason: why, detail }, why === 'untrusted_source'
          ? 'refused a PROXY header from a peer outside proxyProtocol.trustedNetworks'
          : 'refused a connection from a trusted load balancer: no valid PROXY header');
      },
    } : undefined,
  }, handlers);

  const port = await listener.listen(config.port, config.host);
  log.info({
    host: config.host, port, implicitTls: config.implicitTls, starttls: Boolean(tlsFiles) && !config.implicitTls, auth: Boolean(users),
    greetingDelayMs, proxyProtocol: proxyConfig ? proxyConfig.trustedNetworks : false,
  }, 'inbound SMTP listening');

  // cert-manager renews the certificate in place (Secret update, symlink swap): pick it up.
  let tlsTimer: NodeJS.Timeout | undefined;
  if (tlsFiles) {
    tlsTimer = setInterval(() => {
      readTls(tlsFiles).then((next) => {
        if (next.fingerprint === tlsState?.fingerprint) return;
        // Half-written renewals (new key, old cert) throw here, before smtp-server's options are touched.
        createSecureContext({ key: next.key, cert: next.cert });
        listener.updateTls({ key: next.key, cert: next.cert });
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
      for (const s of sessions) kickIfIdle(s);
    },
    resumeAccepting() {
      if (closing) return false;
      if (draining) log.info('inbound accepting again');
      draining = false;
      return true;
    },
    close(graceMs = 10_000) {
      closing ??= (async () => {
        draining = true;
        if (tlsTimer) clearInterval(tlsTimer);
        for (const s of sessions) if (!s.state.inData) s.end(REPLIES.shuttingDown);
        // A 421 in place of the 250 for a message the sink then stores makes the client send it twice.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([noDataInFlight(), new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        })]);
        clearTimeout(timer);
        for (const s of sessions) s.end(REPLIES.shuttingDown);
        await Promise.allSettled([...pendingAccepts]);
        await listener.close();
        log.info('inbound SMTP closed');
      })();
      return closing;
    },
    sessions: () => counted,
    transactions: () => [...sessions].filter((s) => s.state.counted && !isIdle(s)).length,
    spf,
  };
}
