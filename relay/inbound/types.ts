// The contract between the inbound SMTP listener and whatever stores what it accepts
// (the spool in production, an in-memory sink in tests). Inbound depends on this
// interface only, never on the spool's modules, so the two can change independently.

/** RFC 3461 §4.1 NOTIFY keywords of one recipient. */
export type NotifyKeyword = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

/** One recipient of an accepted message, with its RFC 3461 DSN parameters. */
export interface InboundRecipient {
  /** Forward-path, domain in A-label form (RFC 5890); the local part as sent. */
  address: string;
  /** RFC 3461 §4.1 NOTIFY, upper case; absent when the client gave none. */
  notify?: NotifyKeyword[];
  /** RFC 3461 §4.2 ORCPT, xtext-decoded ("rfc822;user@example.com"). */
  orcpt?: string;
}

/** The envelope of one accepted message, as handed to the sink. */
export interface InboundEnvelope {
  /** Reverse-path; '' is the null sender of bounces (RFC 5321 §4.5.5). */
  from: string;
  /** Recipients accepted at RCPT, in order, without duplicates. */
  recipients: InboundRecipient[];
  /** When the final dot arrived (ms since the epoch). */
  receivedAt: number;
  /** Client IP address (IPv4-mapped IPv6 addresses in dotted form). */
  clientAddress?: string;
  /** Name the client gave in EHLO/HELO. */
  heloName?: string;
  /** SMTP AUTH identity, when the client authenticated. */
  authUser?: string;
  /** RFC 3461 §4.3 RET. */
  ret?: 'FULL' | 'HDRS';
  /** RFC 3461 §4.4 ENVID, xtext-decoded. */
  envid?: string;
  /** RFC 6531 SMTPUTF8 was given on MAIL. */
  smtputf8?: boolean;
  /** RFC 6152 BODY= on MAIL. */
  bodyType?: '7BIT' | '8BITMIME';
}

/** Why a sink could not store a message; the `kind` of the error `accept` rejects with. */
export type SinkErrorKind = 'no_space' | 'read_only' | 'io';

/** Durable storage for accepted messages. */
export interface MessageSink {
  /**
   * Stores the message. Resolves only once it is durable; rejects with an Error that has
   * `kind: SinkErrorKind` for storage failures, or with the body's own error if iterating
   * `body` threw (the message is then not stored).
   */
  accept(envelope: InboundEnvelope, body: AsyncIterable<Buffer>): Promise<{ id: string }>;
}

const KINDS: ReadonlySet<string> = new Set<SinkErrorKind>(['no_space', 'read_only', 'io']);

/** The SinkErrorKind carried by an error a sink rejected with, or undefined if it carries none. */
export function sinkErrorKind(err: unknown): SinkErrorKind | undefined {
  const kind = (err as { kind?: unknown } | null | undefined)?.kind;
  return typeof kind === 'string' && KINDS.has(kind) ? (kind as SinkErrorKind) : undefined;
}
