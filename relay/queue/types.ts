// The queue API's wire shapes: what GET /api/v1/queue[/ID] return and what
// POST /api/v1/queue/ACTION takes and answers. Shared by the relay (relay/queue/admin.ts),
// the CLI (relay/queue/cli.ts) and the kubectl plugin; times are ISO 8601 strings.

/** Where a message stands: queued (work due now), deferred (waiting for a retry), held (by an administrator). */
export const QUEUE_STATES = ['queued', 'deferred', 'held'] as const;
/** One of QUEUE_STATES. */
export type QueueState = (typeof QUEUE_STATES)[number];

/** What a list request selects. */
export interface QueueFilter {
  state?: QueueState;
  /** Messages with an unfinished recipient at this domain (case-insensitive). */
  destination?: string;
  /** Messages that arrived at least this many seconds ago. */
  olderThanSeconds?: number;
  /** Messages whose envelope sender contains this text (case-insensitive); "<>" selects bounces (null sender). */
  sender?: string;
  /** At most this many messages (default 1000), oldest first. */
  limit?: number;
}

/** Counts of a message's recipients by state. */
export interface RecipientCounts {
  total: number;
  pending: number;
  deferred: number;
  delivered: number;
  failed: number;
}

/** One line of `queue list`. */
export interface QueueListEntry {
  id: string;
  state: QueueState;
  /** A delivery of this message is running right now. */
  delivering: boolean;
  receivedAt: string;
  ageSeconds: number;
  /** Body size in bytes. */
  size: number;
  /** Envelope sender ('' for a bounce). */
  from: string;
  recipients: RecipientCounts;
  /** Domains of the recipients not yet delivered or failed, sorted. */
  destinations: string[];
  /** Earliest retry of a deferred recipient (absent when something is due now). */
  nextAttemptAt?: string;
  /** The reply that deferred the recipient retried next. */
  lastReply?: string;
  heldAt?: string;
}

/** GET /api/v1/queue. */
export interface QueueListResponse {
  messages: QueueListEntry[];
  /** Messages in the whole queue, by state. */
  counts: Record<QueueState, number>;
  /** More messages matched than `limit` allowed. */
  truncated: boolean;
}

/** One recipient in `queue show`. */
export interface QueueRecipientDetail {
  address: string;
  state: 'pending' | 'deferred' | 'delivered' | 'failed';
  attempts: number;
  notify?: string[];
  orcpt?: string;
  /** deferred: when it is tried next. */
  nextAttemptAt?: string;
  /** deferred: the reply (or connection failure) that deferred it, and why. */
  lastReply?: string;
  reason?: string;
  /** delivered/failed: the final reply, and when. */
  reply?: string;
  at?: string;
}

/** GET /api/v1/queue/ID. */
export interface QueueMessageDetail extends Omit<QueueListEntry, 'recipients'> {
  recipientCounts: RecipientCounts;
  recipients: QueueRecipientDetail[];
  clientAddress?: string;
  heloName?: string;
  authUser?: string;
  envid?: string;
  ret?: 'FULL' | 'HDRS';
  bodyType?: string;
  smtputf8?: boolean;
}

/** What POST /api/v1/queue/ACTION does. */
export const QUEUE_ACTIONS = ['retry', 'hold', 'release', 'delete'] as const;
/** One of QUEUE_ACTIONS. */
export type QueueAction = (typeof QUEUE_ACTIONS)[number];

/** The messages an action applies to: exactly one of ids, all, destination. */
export interface QueueSelection {
  ids?: string[];
  all?: boolean;
  destination?: string;
  /** delete only: bounce the unfinished recipients to the sender (RFC 3464 DSN, as their NOTIFY asks) instead of dropping them silently. */
  dsn?: boolean;
}

/** Per-message outcome of an action. */
export type QueueActionOutcome =
  | 'retrying' | 'held' | 'released' | 'deleted' | 'bounced'
  | 'not_found' | 'skipped' | 'busy' | 'error';

/** One message's outcome. */
export interface QueueActionResult {
  id: string;
  result: QueueActionOutcome;
  /** Why it was skipped or failed. */
  detail?: string;
}

/** POST /api/v1/queue/ACTION. */
export interface QueueActionResponse {
  action: QueueAction;
  results: QueueActionResult[];
}
