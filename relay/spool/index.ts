// Public surface of the spool; other modules import from here.
export { Spool } from './spool.ts';
export type { SpoolOptions, SpoolLogger, SpoolStats, UpdateResult, RecoveryReport } from './spool.ts';
export { SpoolError, MessageNotFoundError, InvalidTransitionError, CorruptRecordError, kindForCode, toSpoolError } from './errors.ts';
export type { SpoolErrorKind, TransitionErrorKind } from './errors.ts';
export type {
  DeferReason, Envelope, NotifyKeyword, QueuedMessage, RecipientState, RecipientUpdate, SpoolRecipient,
} from './record.ts';
export type { BodySource, SpoolFs } from './disk.ts';
export { nodeFs } from './disk.ts';
export { isFinal, summarize } from './state.ts';
export type { MessageKind, MessageSummary } from './state.ts';
export { isMessageId, idTime } from './id.ts';
