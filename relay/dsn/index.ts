// Delivery status notifications (RFC 3464 over RFC 3461): the module's public surface.
// The scheduler decides per recipient with shouldNotify, skips messages for which
// mustNotBounce is true, builds the message with buildDsn, and sends it with dsnEnvelope
// (BODY=8BITMIME when dsnBodyType says so).
export { buildDsn, dsnBodyType, dsnSubject, DsnInputError, SUBJECT_DELAYED, SUBJECT_DELIVERED, SUBJECT_FAILED } from './bounce.ts';
export { dsnEnvelope, mustNotBounce, shouldNotify } from './notify.ts';
export type { ShouldNotifyOptions } from './notify.ts';
export { DEFAULT_MAX_RETURN_BYTES, extractHeaders } from './original.ts';
export type { DsnAction, DsnEnvelope, DsnInput, DsnNotifyKeyword, DsnRecipient } from './types.ts';
