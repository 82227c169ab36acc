// PURE inbound policy: who may connect, relay and send what. Every check takes plain
// facts (no sockets, no smtp-server objects) and returns the reply to refuse with, or
// null to go ahead. server.ts gathers the facts and sends the replies; the tables in
// policy.test.ts pin down every decision.
//
// Every reply carries an RFC 3463 enhanced status code (RFC 2034 §3).
import { domainToASCII } from 'node:url';
import type { SinkErrorKind } from './types.ts';

/** Why inbound refused something; a bounded set, used in logs. */
export type RejectReason =
  | 'shutting_down'
  | 'too_many_connections'
  | 'too_many_connections_from_ip'
  | 'no_helo'
  | 'bad_sender_syntax'
  | 'bad_recipient_syntax'
  | 'unqualified_recipient'
  | 'non_ascii_address'
  | 'message_too_big'
  | 'relay_denied'
  | 'too_many_recipients'
  | 'no_space'
  | 'spool_error'
  | 'auth_failed'
  | 'auth_unavailable'
  | 'too_many_auth_failures'
  | 'connection_rate'
  | 'too_many_commands'
  | 'too_many_unrecognized_commands'
  | 'command_timeout'
  | 'data_timeout'
  | 'idle_timeout'
  | 'early_talker'
  | 'command_too_long'
  | 'http_request'
  | 'line_too_long'
  | 'header_too_big'
  | 'spf_fail'
  | 'spf_temperror'
  | 'spf_permerror'
  | 'proxy_untrusted'
  | 'proxy_invalid'
  | 'proxy_timeout';

/** A refusal: 3-digit code, RFC 3463 enhanced code ("5.7.1"), text, and why. */
export interface PolicyReply {
  code: number;
  enhanced: string;
  text: string;
  reason: RejectReason;
}

/** The limits inbound enforces (the matching fields of the `inbound` config section). */
export interface InboundLimits {
  maxMessageSize: number;
  maxRecipients: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
}

const reply = (code: number, enhanced: string, text: string, reason: RejectReason): PolicyReply =>
  Object.freeze({ code, enhanced, text, reason });

/** The fixed replies, so tests and callers name them instead of retyping codes. */
export const REPLIES = Object.freeze({
  // RFC 3463 X.3.2 "System not accepting network messages"; RFC 5321 §3.8 lets a server
  // answer 421 and close at any time when it must shut down.
  shuttingDown: reply(421, '4.3.2', 'Service shutting down', 'shutting_down'),
  tooManyConnections: reply(421, '4.3.2', 'Too many connections, try again later', 'too_many_connections'),
  // RFC 3463 X.7.0 "Other or undefined security status": a per-client policy limit.
  tooManyFromIp: reply(421, '4.7.0', 'Too many connections from your address', 'too_many_connections_from_ip'),
  // RFC 5321 §4.1.4: a client must open with EHLO/HELO; X.5.1 "Invalid command".
  noHelo: reply(503, '5.5.1', 'Send HELO/EHLO first', 'no_helo'),
  // RFC 3463 X.1.7 "Bad sender's mailbox address syntax".
  badSender: reply(501, '5.1.7', 'Bad sender address syntax', 'bad_sender_syntax'),
  // RFC 3463 X.1.3 "Bad destination mailbox address syntax".
  badRecipient: reply(501, '5.1.3', 'Bad recipient address syntax', 'bad_recipient_syntax'),
  // A relay has no local mailboxes, so a domainless recipient (even <postmaster>,
  // RFC 5321 §4.1.1.3) cannot be routed anywhere.
  unqualifiedRecipient: reply(501, '5.1.3', 'Recipient address must be fully qualified', 'unqualified_recipient'),
  // RFC 6531: without SMTPUTF8 on MAIL, a non-ASCII mailbox is refused with 553 X.6.7
  // "Non-ASCII addresses not permitted for that sender/recipient" (RFC 5248 registry).
  nonAscii: reply(553, '5.6.7', 'Non-ASCII address needs SMTPUTF8', 'non_ascii_address'),
  // RFC 1870 §6: a declared or actual size over the limit gets 552; X.3.4 "Message too big for system".
  tooBig: reply(552, '5.3.4', 'Message size exceeds fixed maximum message size', 'message_too_big'),
  // Never an open relay: RFC 5321 §3.6.2 leaves relaying to local policy; X.7.1
  // "Delivery not authorized, message refused". 554 at RCPT, as Postfix answers.
  relayDenied: reply(554, '5.7.1', 'Relay access denied', 'relay_denied'),
  // RFC 5321 §4.5.3.1.10: recipients beyond the server's limit get 452, and the client
  // sends them in a later transaction; X.5.3 "Too many recipients".
  tooManyRecipients: reply(452, '4.5.3', 'Too many recipients', 'too_many_recipients'),
  // RFC 5321 §4.2.2 452 "insufficient system storage"; X.3.1 "Mail system full".
  noSpace: reply(452, '4.3.1', 'Insufficient system storage', 'no_space'),
  // RFC 5321 §4.2.2 451 "local error in processing"; X.3.0 "Other or undefined mail system status".
  spoolError: reply(451, '4.3.0', 'Local error in processing', 'spool_error'),
  // RFC 4954 §6: 535 5.7.8 bad credentials, 454 4.7.0 temporary authentication failure.
  authFailed: reply(535, '5.7.8', 'Authentication credentials invalid', 'auth_failed'),
  authUnavailable: reply(454, '4.7.0', 'Temporary authentication failure', 'auth_unavailable'),
  tooManyAuthFailures: reply(421, '4.7.0', 'Too many authentication failures', 'too_many_auth_failures'),
  // Abuse limits of the listener. A 421 closes the session (RFC 5321 §3.8); X.7.0 for a
  // per-client policy limit, X.4.2 "Bad connection" for a client too slow to be served.
  connectionRate: reply(421, '4.7.0', 'Too many new connections from your address, slow down', 'connection_rate'),
  tooManyCommands: reply(421, '4.7.0', 'Too many commands', 'too_many_commands'),
  tooManyUnrecognized: reply(421, '4.7.0', 'Too many unrecognized commands', 'too_many_unrecognized_commands'),
  commandTimeout: reply(421, '4.4.2', 'Timeout waiting for a command', 'command_timeout'),
  dataTimeout: reply(421, '4.4.2', 'Timeout: message data took too long', 'data_timeout'),
  idleTimeout: reply(421, '4.4.2', 'Timeout - closing connection', 'idle_timeout'),
  // RFC 5321 §4.3.1 / §3.1: the client must wait for the greeting; one that talks first is
  // a bot that ignores replies (smtp-server detects it during its 100 ms pre-greeting
  // pause). X.5.0 "Other or undefined protocol status".
  earlyTalker: reply(421, '4.5.0', 'Protocol error: data sent before the greeting', 'early_talker'),
  // RFC 5321 §4.5.3.1.4 allows 512 octets (AUTH, RFC 4954 §4: 12288); smtp-server's parser
  // stops at 16 KiB and cannot go on, so the reply is a 421, with X.5.2 "Syntax error".
  commandTooLong: reply(421, '4.5.2', 'Command line too long', 'command_too_long'),
  httpRequest: reply(421, '4.7.0', 'HTTP requests not allowed', 'http_request'),
  // RFC 5322 §2.1.1: a line MUST be at most 998 characters plus CRLF. Answered after the
  // final dot; X.6.0 "Other or undefined media error" (the content, not the protocol).
  lineTooLong: reply(554, '5.6.0', 'Message has a line longer than the limit (RFC 5322 2.1.1)', 'line_too_long'),
  // A header section beyond the limit: X.3.4 "Message too big for system", as for size.
  headerTooBig: reply(552, '5.3.4', 'Message header exceeds the fixed maximum size', 'header_too_big'),
  // RFC 7208 §8.4 with the RFC 7372 codes: 550 X.7.23 "SPF validation failed" for a fail,
  // X.7.24 "SPF validation error" for temperror (451) and permerror (550).
  spfFail: reply(550, '5.7.23', 'SPF validation failed', 'spf_fail'),
  spfTempError: reply(451, '4.7.24', 'SPF validation error (temporary DNS failure), try again later', 'spf_temperror'),
  spfPermError: reply(550, '5.7.24', 'SPF validation error (the sender domain publishes an invalid SPF record)', 'spf_permerror'),
  // PROXY protocol (HAProxy's spec, v1/v2). These stand in for the greeting (RFC 5321
  // §3.1 allows a 421 there) and close. A header from a peer that is not a configured load
  // balancer is a client claiming another address: X.7.0, a security refusal. A trusted
  // load balancer that sends a broken header, or none, is a protocol error (X.5.0) or too
  // slow (X.4.2); its client learns why through the balancer.
  proxyUntrusted: reply(421, '4.7.0', 'PROXY protocol header not accepted from your address', 'proxy_untrusted'),
  proxyInvalid: reply(421, '4.5.0', 'PROXY protocol header missing or invalid', 'proxy_invalid'),
  proxyTimeout: reply(421, '4.4.2', 'Timeout waiting for the PROXY protocol header', 'proxy_timeout'),
});

/** The reply as smtp-server's error message: the enhanced code, then the text. */
export function replyMessage(r: PolicyReply): string {
  return `${r.enhanced} ${r.text}`;
}

/** Facts known when a client connects. */
export interface ConnectFacts {
  /** stopAccepting() was called. */
  draining: boolean;
  /** Sessions already open (not counting this one). */
  open: number;
  /** Sessions already open from this client's IP (not counting this one). */
  openFromIp: number;
  /** The client's IP has used up its connection rate (token bucket empty). */
  rateLimited?: boolean;
}

/** Whether to greet a new connection or refuse it with 421. */
export function checkConnect(f: ConnectFacts, limits: Pick<InboundLimits, 'maxConnections' | 'maxConnectionsPerIp'>): PolicyReply | null {
  if (f.draining) return REPLIES.shuttingDown;
  if (f.open >= limits.maxConnections) return REPLIES.tooManyConnections;
  if (f.openFromIp >= limits.maxConnectionsPerIp) return REPLIES.tooManyFromIp;
  if (f.rateLimited) return REPLIES.connectionRate;
  return null;
}

/**
 * Our reply for one of smtp-server's own refusals, recognised by its text, so it carries
 * an enhanced code that says what happened and a reason for the log; null keeps
 * smtp-server's reply (syntax and sequence errors, whose generic codes fit).
 */
export function libraryRefusal(code: number, text: string): PolicyReply | null {
  if (code !== 421) return null;
  if (text.includes('You talk too soon')) return REPLIES.earlyTalker;
  if (text.includes('Command line too long')) return REPLIES.commandTooLong;
  if (text.includes('too many unrecognized commands')) return REPLIES.tooManyUnrecognized;
  if (text.startsWith('Timeout')) return REPLIES.idleTimeout;
  if (text.includes('HTTP requests not allowed')) return REPLIES.httpRequest;
  return null;
}

/** SPF results of one transaction (RFC 7208 §2.6), as far as they were checked. */
export interface SpfFacts {
  /** Result for the MAIL FROM identity (postmaster@HELO for a null sender). */
  mailfrom: SpfOutcome;
  /** Result for the HELO identity, when it was checked. */
  helo?: SpfOutcome;
}

/** An RFC 7208 §2.6 result. */
export type SpfOutcome = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror';

/** What to do with a transaction's SPF results: refuse MAIL with `reply`, or accept and maybe add the header. */
export interface SpfDecision {
  reply: PolicyReply | null;
  /** Add an Authentication-Results field (RFC 8601) to the message. */
  tag: boolean;
}

/**
 * RFC 7208 §8 results under the configured policy. `record` never changes a reply.
 * `reject` refuses a fail of either identity (§8.4; a HELO fail is conclusive, §2.3),
 * defers a MAIL FROM temperror (§8.6), refuses a permerror only when asked (§8.7 leaves
 * it to local policy), and tags the rest. `tag` defers a temperror and tags everything else.
 */
export function checkSpf(f: SpfFacts, cfg: { policy: 'reject' | 'tag' | 'record'; rejectPermerror: boolean }): SpfDecision {
  if (cfg.policy === 'record') return { reply: null, tag: false };
  if (cfg.policy === 'reject') {
    if (f.mailfrom === 'fail' || f.helo === 'fail') return { reply: REPLIES.spfFail, tag: false };
    if (f.mailfrom === 'permerror' && cfg.rejectPermerror) return { reply: REPLIES.spfPermError, tag: false };
  }
  if (f.mailfrom === 'temperror') return { reply: REPLIES.spfTempError, tag: false };
  return { reply: null, tag: true };
}

/** Whether AUTH is offered to this session. */
export interface AuthFacts {
  /** A users file is configured. */
  usersConfigured: boolean;
  /** The session is TLS (implicit, or after STARTTLS). */
  secure: boolean;
  /** `inbound.requireTlsForAuth`. */
  requireTlsForAuth: boolean;
  /** The client is on this host (loopback), where nobody can snoop the password. */
  localClient: boolean;
}

/**
 * RFC 4954 §4: a server SHOULD NOT permit plaintext password mechanisms (PLAIN, LOGIN)
 * without TLS. AUTH is offered over plaintext only to loopback clients, or when
 * requireTlsForAuth is turned off.
 */
export function authOffered(f: AuthFacts): boolean {
  return f.usersConfigured && (f.secure || !f.requireTlsForAuth || f.localClient);
}

// A message's recipients mostly share a few domains (50 RCPTs to one domain is common):
// remember the last A-label conversions. Bounded; the result depends on the input only.
const asciiMemo = new Map<string, string>();
function asciiDomain(domain: string): string {
  let a = asciiMemo.get(domain);
  if (a === undefined) {
    a = domainToASCII(domain);
    if (asciiMemo.size >= 256) asciiMemo.clear();
    asciiMemo.set(domain, a);
  }
  return a;
}

/** A mailbox after normalisation, or the reply refusing it. */
export type MailboxResult = { ok: true; address: string } | { ok: false; reply: PolicyReply };

// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;
// smtp-server already refused control characters and '<', '>'; whitespace must not
// reach the spool either (RFC 5321 §4.1.2: no unquoted spaces in a Mailbox).
const WHITESPACE = /\s/;

/**
 * Normalises a MAIL or RCPT address as smtp-server parsed it. smtp-server turns an
 * A-label domain into Unicode (punycode.toUnicode); the domain goes back to A-labels
 * (RFC 5890) here so that routing, DSNs and non-SMTPUTF8 next hops all see ASCII.
 * A non-ASCII local part needs SMTPUTF8 on MAIL (RFC 6531); without it: 553 5.6.7.
 * The null reverse-path '' is a valid sender (RFC 5321 §4.5.5).
 */
export function normaliseMailbox(address: string, role: 'sender' | 'recipient', smtputf8: boolean): MailboxResult {
  const bad = role === 'sender' ? REPLIES.badSender : REPLIES.badRecipient;
  if (address === '') return role === 'sender' ? { ok: true, address } : { ok: false, reply: bad };
  if (WHITESPACE.test(address)) return { ok: false, reply: bad };
  const at = address.lastIndexOf('@');
  if (at < 0) return { ok: false, reply: role === 'recipient' ? REPLIES.unqualifiedRecipient : bad };
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (local === '' || domain === '') return { ok: false, reply: bad };
  if (NON_ASCII.test(local) && !smtputf8) return { ok: false, reply: REPLIES.nonAscii };
  if (domain.startsWith('[')) {
    // An address literal (RFC 5321 §4.1.3); smtp-server validated the IP inside.
    return domain.endsWith(']') ? { ok: true, address } : { ok: false, reply: bad };
  }
  const ascii = asciiDomain(domain);
  if (ascii === '' || !/^[a-z0-9_.-]+$/.test(ascii)) return { ok: false, reply: bad };
  return { ok: true, address: `${local}@${ascii}` };
}

/** Facts for a MAIL FROM command. */
export interface MailFacts {
  /** The EHLO/HELO name, or empty if the client never greeted. */
  heloName: string;
  /** stopAccepting() was called: no new transactions. */
  draining: boolean;
  /** RFC 1870 SIZE= the client declared, if any. */
  declaredSize: number | undefined;
}

/** Checks MAIL FROM (the address itself goes through normaliseMailbox). */
export function checkMailFrom(f: MailFacts, limits: Pick<InboundLimits, 'maxMessageSize'>): PolicyReply | null {
  // Draining: the connection gets 421 and is closed; a session may finish the
  // transaction it is in, but may not start another (RFC 5321 §3.8).
  if (f.draining) return REPLIES.shuttingDown;
  if (f.heloName === '') return REPLIES.noHelo;
  if (f.declaredSize !== undefined && f.declaredSize > limits.maxMessageSize) return REPLIES.tooBig;
  return null;
}

/** Facts for a RCPT TO command. */
export interface RcptFacts {
  /** The client's IP is in `inbound.relayNetworks`. */
  inRelayNetworks: boolean;
  /** The session authenticated with SMTP AUTH. */
  authenticated: boolean;
  /** Recipients already accepted in this transaction. */
  recipientsSoFar: number;
}

/**
 * Checks RCPT TO. Relay permission comes first: a client that may not relay learns
 * nothing about limits. Every recipient is foreign to a relay, so every RCPT needs it.
 */
export function checkRcptTo(f: RcptFacts, limits: Pick<InboundLimits, 'maxRecipients'>): PolicyReply | null {
  if (!f.inRelayNetworks && !f.authenticated) return REPLIES.relayDenied;
  if (f.recipientsSoFar >= limits.maxRecipients) return REPLIES.tooManyRecipients;
  return null;
}

/** RFC 1870 §6: the message as received (not as declared) may not exceed the limit. */
export function checkMessageSize(bytes: number, limits: Pick<InboundLimits, 'maxMessageSize'>): PolicyReply | null {
  return bytes > limits.maxMessageSize ? REPLIES.tooBig : null;
}

/**
 * The reply when the sink could not store a message. Never a 2xx (the message is not
 * durable) and never a 5xx (the client would bounce mail we might take in a minute):
 * a full disk is 452 4.3.1, anything else 451 4.3.0, so the client retries.
 */
export function sinkFailureReply(kind: SinkErrorKind | undefined): PolicyReply {
  return kind === 'no_space' ? REPLIES.noSpace : REPLIES.spoolError;
}
