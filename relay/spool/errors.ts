// Typed spool errors. Callers switch on `kind` (or on the class), never on message text:
// inbound maps SpoolError 'no_space' to 452 4.3.1 and every other kind to 451 4.3.0
// (RFC 3463 section 3.4: 4.3.1 "mail system full", 4.3.0 "other or undefined mail system status").

/** What went wrong with the storage under the spool, as inbound needs to know it. */
export type SpoolErrorKind = 'no_space' | 'read_only' | 'io';

/** A storage failure: the operation did not become durable, and nothing half-done is visible. */
export class SpoolError extends Error {
  override readonly name = 'SpoolError';
  /** The errno name that caused it (ENOSPC, EROFS, EIO...), when the cause was a system error. */
  readonly code: string | undefined;
  /** The system call that failed (open, write, fdatasync...), when known. */
  readonly syscall: string | undefined;
  /** The file the system call failed on, when known: what a person has to look at. */
  readonly path: string | undefined;

  constructor(
    readonly kind: SpoolErrorKind,
    /** What the spool was doing ("accept", "update", "open"...). */
    readonly op: string,
    options: { cause?: unknown; code?: string; syscall?: string; path?: string; detail?: string } = {},
  ) {
    const where = options.syscall ? ` in ${options.syscall}${options.path ? ` ${options.path}` : ''}` : '';
    super(`spool ${op} failed: ${kind}${options.code ? ` (${options.code}${where})` : ''}${options.detail ? `: ${options.detail}` : ''}`,
      { cause: options.cause });
    this.code = options.code;
    this.syscall = options.syscall;
    this.path = options.path;
  }
}

/** A message id that the spool does not hold (never accepted, malformed, or already completed). */
export class MessageNotFoundError extends Error {
  override readonly name = 'MessageNotFoundError';
  constructor(readonly id: string) {
    super(`spool: no message ${JSON.stringify(id)}`);
  }
}

/** Why a recipient update was refused. */
export type TransitionErrorKind = 'unknown_recipient' | 'already_final';

/**
 * A recipient update that would break the state machine, e.g. moving a delivered recipient
 * back to deferred: refused so that a recipient recorded as delivered is never sent again.
 */
export class InvalidTransitionError extends Error {
  override readonly name = 'InvalidTransitionError';
  constructor(
    readonly kind: TransitionErrorKind,
    readonly address: string,
    readonly from: string | undefined,
    readonly to: string,
  ) {
    super(kind === 'unknown_recipient'
      ? `spool: message has no recipient ${JSON.stringify(address)}`
      : `spool: recipient ${JSON.stringify(address)} is already ${from}; refusing ${to}`);
  }
}

/** On-disk bytes that fail their checksum or schema: a torn write that was never acknowledged, or media damage. */
export class CorruptRecordError extends Error {
  override readonly name = 'CorruptRecordError';
  constructor(readonly detail: string) {
    super(`spool: corrupt record: ${detail}`);
  }
}

const NO_SPACE = new Set(['ENOSPC', 'EDQUOT']);
// EACCES/EPERM: a dir we may not write (wrong owner/mode, immutable attribute) behaves like
// a read-only volume for inbound's purposes: retrying soon will not help, but it is temporary.
const READ_ONLY = new Set(['EROFS', 'EACCES', 'EPERM']);

/** Classifies an errno name into the kind inbound acts on. */
export function kindForCode(code: string | undefined): SpoolErrorKind {
  if (code !== undefined && NO_SPACE.has(code)) return 'no_space';
  if (code !== undefined && READ_ONLY.has(code)) return 'read_only';
  return 'io';
}

/** Wraps any error thrown by the file layer into a SpoolError; passes SpoolErrors through unchanged. */
export function toSpoolError(err: unknown, op: string): SpoolError {
  if (err instanceof SpoolError) return err;
  const e = err as { code?: unknown; syscall?: unknown; path?: unknown; message?: unknown } | null | undefined;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const syscall = typeof e?.syscall === 'string' ? e.syscall : undefined;
  const path = typeof e?.path === 'string' ? e.path : undefined;
  const detail = code === undefined && typeof e?.message === 'string' ? e.message : undefined;
  return new SpoolError(kindForCode(code), op, { cause: err, code, syscall, path, detail });
}
