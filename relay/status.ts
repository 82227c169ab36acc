// The relay's /status document: what the operator's autoscaler and healing read from
// each pod (docs/adr/0009-autoscaling.md), over the same authenticated channel as
// /drain. Pure: buildRelayStatus turns a snapshot of the relay's state into the document,
// combineRelayStatus merges the documents of a relay's worker processes into one for the
// whole pod, and RateMeter turns a counter's samples into a per-second rate. The I/O
// (reading the spool, the engine and the counters) is in service.ts.

import type { Route } from './http.ts';

/** Version of the document's shape; a reader refuses a version it does not know. */
export const RELAY_STATUS_VERSION = 1;

/** A recipient limit the engine learned from a destination's "too many recipients" replies. */
export interface LearnedLimit {
  /** The destination (smarthost or MX host group) the limit applies to. */
  destination: string;
  /** Recipients per transaction it takes. */
  maxRecipients: number;
}

/** Why the spool cannot take mail: a full volume, or one the relay cannot write at all. */
export type SpoolProblem = 'full' | 'unwritable';

/** The /status document of one relay pod. */
export interface RelayStatus {
  /** RELAY_STATUS_VERSION. */
  version: number;
  /** When the snapshot was taken (RFC 3339). */
  time: string;
  queue: {
    /** Messages in the spool (queued + deferred). */
    messages: number;
    /** Messages with recipients due now or being delivered. */
    queued: number;
    /** Messages whose recipients all wait for a retry. */
    deferred: number;
    /** Messages being delivered right now. */
    inFlight: number;
    /** Age of the oldest message in the spool, in seconds; null when empty. */
    oldestAgeSeconds: number | null;
    /** Age of the oldest queued (not deferred) message: how far delivery is behind; null when none. */
    oldestQueuedAgeSeconds: number | null;
  };
  delivery: {
    /** Recipients delivered per second over the last `windowSeconds`. */
    deliveredPerSecond: number;
    /** Messages accepted (250) per second over the same window. */
    acceptedPerSecond: number;
    /** Length of the window the rates are measured over, in seconds. */
    windowSeconds: number;
    /** Recipient limits learned per destination, sorted by destination. */
    learnedLimits: LearnedLimit[];
  };
  /** True while the relay refuses new mail (a hold or an exit drain). */
  draining: boolean;
  spool: {
    /** The last write (or the periodic probe) succeeded. */
    writable: boolean;
    /** What is wrong when it cannot take mail; absent when it can. */
    problem?: SpoolProblem;
    /** The error behind `problem`, as the spool reported it. */
    message?: string;
  };
  /** Worker processes the document covers (1 for a single-process relay). */
  processes: number;
}

/** The relay's state at one moment, as service.ts reads it. */
export interface RelaySnapshot {
  /** The clock, ms since the epoch. */
  now: number;
  /** Spool counts (Spool.stats()). */
  spool: { messages: number; byState: { queued: number; deferred: number }; oldestReceivedAt: number | undefined; oldestQueuedReceivedAt: number | undefined };
  /** Scheduler.active. */
  inFlight: number;
  /** DeliveryEngine.learnedLimits(). */
  learnedLimits: ReadonlyMap<string, number>;
  /** Per-second rates and their window. */
  rates: { delivered: number; accepted: number; windowSeconds: number };
  draining: boolean;
  /** undefined when the spool takes writes. */
  spoolProblem?: { problem: SpoolProblem; message: string };
}

const age = (now: number, at: number | undefined): number | null => (at === undefined ? null : Math.max(0, Math.round((now - at) / 100) / 10));
const round2 = (x: number) => Math.round(x * 100) / 100;

/** The /status document of a snapshot. */
export function buildRelayStatus(s: RelaySnapshot): RelayStatus {
  const spool: RelayStatus['spool'] = { writable: s.spoolProblem === undefined };
  if (s.spoolProblem) {
    spool.problem = s.spoolProblem.problem;
    spool.message = s.spoolProblem.message;
  }
  return {
    version: RELAY_STATUS_VERSION,
    time: new Date(s.now).toISOString(),
    queue: {
      messages: s.spool.messages,
      queued: s.spool.byState.queued,
      deferred: s.spool.byState.deferred,
      inFlight: s.inFlight,
      oldestAgeSeconds: age(s.now, s.spool.oldestReceivedAt),
      oldestQueuedAgeSeconds: age(s.now, s.spool.oldestQueuedReceivedAt),
    },
    delivery: {
      deliveredPerSecond: round2(s.rates.delivered),
      acceptedPerSecond: round2(s.rates.accepted),
      windowSeconds: s.rates.windowSeconds,
      learnedLimits: [...s.learnedLimits].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([destination, maxRecipients]) => ({ destination, maxRecipients })),
    },
    draining: s.draining,
    spool,
    processes: 1,
  };
}

const maxOrNull = (xs: (number | null)[]): number | null => {
  const known = xs.filter((x): x is number => x !== null);
  return known.length === 0 ? null : Math.max(...known);
};

/**
 * One document for a pod whose relay runs as several processes, each with its own spool
 * shard: counts and rates add up, ages take the oldest, a destination's learned limit is
 * the smallest any process learned, the pod drains only when every process does (a
 * scale-down may remove it only then), and a spool problem of any shard is the pod's.
 */
export function combineRelayStatus(parts: readonly RelayStatus[]): RelayStatus {
  const [first] = parts;
  if (!first) throw new Error('combineRelayStatus: no documents');
  const sum = (f: (p: RelayStatus) => number) => parts.reduce((a, p) => a + f(p), 0);
  const limits = new Map<string, number>();
  for (const p of parts) for (const l of p.delivery.learnedLimits) limits.set(l.destination, Math.min(limits.get(l.destination) ?? Infinity, l.maxRecipients));
  const troubled = parts.find((p) => p.spool.problem === 'unwritable') ?? parts.find((p) => p.spool.problem !== undefined);
  const spool: RelayStatus['spool'] = { writable: parts.every((p) => p.spool.writable) };
  if (troubled?.spool.problem) spool.problem = troubled.spool.problem;
  if (troubled?.spool.message) spool.message = troubled.spool.message;
  return {
    version: RELAY_STATUS_VERSION,
    time: parts.map((p) => p.time).sort().at(-1) ?? first.time,
    queue: {
      messages: sum((p) => p.queue.messages),
      queued: sum((p) => p.queue.queued),
      deferred: sum((p) => p.queue.deferred),
      inFlight: sum((p) => p.queue.inFlight),
      oldestAgeSeconds: maxOrNull(parts.map((p) => p.queue.oldestAgeSeconds)),
      oldestQueuedAgeSeconds: maxOrNull(parts.map((p) => p.queue.oldestQueuedAgeSeconds)),
    },
    delivery: {
      deliveredPerSecond: round2(sum((p) => p.delivery.deliveredPerSecond)),
      acceptedPerSecond: round2(sum((p) => p.delivery.acceptedPerSecond)),
      windowSeconds: Math.max(...parts.map((p) => p.delivery.windowSeconds)),
      learnedLimits: [...limits].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([destination, maxRecipients]) => ({ destination, maxRecipients })),
    },
    draining: parts.every((p) => p.draining),
    spool,
    processes: sum((p) => p.processes),
  };
}

/**
 * Problems in a document read from a relay, or [] when it is one the reader understands.
 * The operator reads /status from pods that may run another version of the relay.
 */
export function relayStatusProblems(doc: unknown): string[] {
  const d = doc as Partial<RelayStatus> | null;
  if (d === null || typeof d !== 'object') return ['not a JSON object'];
  if (d.version !== RELAY_STATUS_VERSION) return [`version ${String(d.version)}, expected ${RELAY_STATUS_VERSION}`];
  const out: string[] = [];
  const num = (v: unknown, what: string, nullable = false) => {
    if (!(typeof v === 'number' && Number.isFinite(v) && v >= 0) && !(nullable && v === null)) out.push(`${what} is not a number`);
  };
  num(d.queue?.queued, 'queue.queued');
  num(d.queue?.deferred, 'queue.deferred');
  num(d.queue?.messages, 'queue.messages');
  num(d.queue?.inFlight, 'queue.inFlight');
  num(d.queue?.oldestAgeSeconds, 'queue.oldestAgeSeconds', true);
  num(d.queue?.oldestQueuedAgeSeconds, 'queue.oldestQueuedAgeSeconds', true);
  num(d.delivery?.deliveredPerSecond, 'delivery.deliveredPerSecond');
  if (typeof d.draining !== 'boolean') out.push('draining is not a boolean');
  if (typeof d.spool?.writable !== 'boolean') out.push('spool.writable is not a boolean');
  return out;
}

/**
 * A per-second rate of a growing total (a counter), from samples taken at most every
 * `resolutionMs`: the increase over the last `windowMs` divided by the time it covers.
 * A counter that went backwards (a process restart) starts the window again.
 */
export class RateMeter {
  private readonly samples: { at: number; total: number }[] = [];

  constructor(private readonly windowMs = 60_000, private readonly resolutionMs = 1000) {}

  /** Records the total at time `at` (ms). */
  sample(total: number, at: number): void {
    const last = this.samples.at(-1);
    if (last && total < last.total) this.samples.length = 0;
    if (last && at - last.at < this.resolutionMs && this.samples.length > 1) this.samples[this.samples.length - 1] = { at, total };
    else this.samples.push({ at, total });
    while (this.samples.length > 2 && (this.samples[1]?.at ?? at) <= at - this.windowMs) this.samples.shift();
  }

  /** The rate over the window ending at the last sample; 0 until two samples span some time. */
  perSecond(): number {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last.at <= first.at) return 0;
    return ((last.total - first.total) * 1000) / (last.at - first.at);
  }

  /** The window, in seconds. */
  get windowSeconds(): number {
    return this.windowMs / 1000;
  }
}

/**
 * GET /status (this file's document): the queue and spool state the operator's autoscaler and
 * healing read from each pod (docs/adr/0009-autoscaling.md). An admin route: queue depths
 * and learned limits are the operator's to read, over the same channel as /drain.
 */
export function statusRoute(status: () => Promise<RelayStatus>): Route {
  return {
    methods: ['GET'], path: '/status', access: 'admin', action: 'status', polled: true,
    handle: async () => ({ status: 200, body: await status() }),
  };
}
