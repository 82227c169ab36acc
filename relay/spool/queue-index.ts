// The in-memory index: per message only what the scheduler needs to pick work (id, due time,
// bucket, arrival time), never the recipient list, so 100k queued messages cost a few hundred
// bytes each. An indexed binary min-heap on (dueAt, id) gives O(log n) insert/update/remove and
// lets due() list the k earliest due messages in O(k log k) without disturbing the heap.

import type { MessageKind } from './state.ts';

/** One indexed message. Fields are read-only to callers; the index keeps them consistent. */
export interface IndexEntry {
  readonly id: string;
  readonly receivedAt: number;
  /** ms epoch at which the message next has work; see summarize(). */
  dueAt: number;
  kind: Exclude<MessageKind, 'done'>;
  /** Position in the heap array; maintained by the index. */
  pos: number;
  /** Owner-managed: log location of the message record (see spool.ts), -1 if unset. */
  msgLoc: number;
  /** Owner-managed: log location of the latest state record, -1 if none. */
  stateLoc: number;
  /** Owner-managed: byte lengths of those two records (the log counts live bytes per segment). */
  msgLen: number;
  stateLen: number;
}

/** Counts for metrics and the operator's status. */
export interface IndexStats {
  messages: number;
  byState: { queued: number; deferred: number; held: number };
  /** ms epoch of the oldest message still queued or deferred; undefined when empty. */
  oldestReceivedAt: number | undefined;
  /**
   * ms epoch of the oldest message in the queued bucket (due, or being delivered), leaving
   * out those waiting for a retry; undefined when there is none. How far delivery is behind
   * arrivals: the autoscaler's age signal (more relays do not retry a deferred message sooner).
   */
  oldestQueuedReceivedAt: number | undefined;
}

function before(a: IndexEntry, b: IndexEntry): boolean {
  return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.id < b.id);
}

/** The scheduler's view of the spool: which messages exist and which are due. */
export class QueueIndex {
  private readonly byId = new Map<string, IndexEntry>();
  private readonly heap: IndexEntry[] = [];
  private readonly counts = { queued: 0, deferred: 0, held: 0 };
  // Cached minimum of receivedAt; recomputed lazily when the entry holding it leaves.
  private oldest: IndexEntry | undefined;
  private oldestStale = false;
  // The same for the queued bucket only.
  private oldestQueued: IndexEntry | undefined;
  private oldestQueuedStale = false;

  /** Number of indexed messages. */
  get size(): number {
    return this.byId.size;
  }

  /** True if the message is indexed. */
  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** The entry for id, if indexed (only msgLoc/stateLoc may be changed by the caller). */
  get(id: string): IndexEntry | undefined {
    return this.byId.get(id);
  }

  /** Adds a message or updates its due time and bucket; kind 'done' removes it. Returns the entry. */
  set(id: string, receivedAt: number, kind: MessageKind, dueAt: number): IndexEntry | undefined {
    if (kind === 'done') {
      this.delete(id);
      return undefined;
    }
    const e = this.byId.get(id);
    if (e === undefined) {
      const entry: IndexEntry = { id, receivedAt, dueAt, kind, pos: this.heap.length, msgLoc: -1, stateLoc: -1, msgLen: 0, stateLen: 0 };
      this.byId.set(id, entry);
      this.heap.push(entry);
      this.up(entry.pos);
      this.counts[kind]++;
      if (!this.oldestStale && (this.oldest === undefined || receivedAt < this.oldest.receivedAt)) this.oldest = entry;
      if (kind === 'queued') this.noteQueued(entry);
      return entry;
    }
    if (e.kind !== kind) {
      this.counts[e.kind]--;
      this.counts[kind]++;
      e.kind = kind;
      if (kind === 'queued') this.noteQueued(e);
      else if (this.oldestQueued === e) this.staleQueued();
    }
    if (e.dueAt !== dueAt) {
      const earlier = dueAt < e.dueAt;
      e.dueAt = dueAt;
      if (earlier) this.up(e.pos);
      else this.down(e.pos);
    }
    return e;
  }

  /** Removes a message; returns false if it was not indexed. */
  delete(id: string): boolean {
    const e = this.byId.get(id);
    if (e === undefined) return false;
    this.byId.delete(id);
    this.counts[e.kind]--;
    const last = this.heap.pop();
    if (last !== undefined && last !== e) {
      this.heap[e.pos] = last;
      last.pos = e.pos;
      this.up(last.pos);
      this.down(last.pos);
    }
    e.pos = -1;
    if (this.oldest === e) {
      this.oldest = undefined;
      this.oldestStale = true;
    }
    if (this.oldestQueued === e) this.staleQueued();
    return true;
  }

  private noteQueued(e: IndexEntry): void {
    if (!this.oldestQueuedStale && (this.oldestQueued === undefined || e.receivedAt < this.oldestQueued.receivedAt)) this.oldestQueued = e;
  }

  private staleQueued(): void {
    this.oldestQueued = undefined;
    this.oldestQueuedStale = true;
  }

  /**
   * Ids whose due time is at or before now, earliest due first (ties by id, i.e. arrival),
   * at most limit of them, skipping ids in exclude (e.g. the scheduler's in-flight set).
   * Does not change the index: a message stays due until its recipients are updated.
   */
  due(now: number, limit: number, exclude?: ReadonlySet<string>): string[] {
    const out: string[] = [];
    if (limit <= 0 || this.heap.length === 0) return out;
    // Best-first walk of the heap: a small frontier heap of positions ordered like the main
    // heap. Every popped position is <= now, so work is bounded by what is due (plus the
    // excluded ones and their children), not by the size of the queue.
    const frontier: number[] = [0];
    const lessPos = (a: number, b: number): boolean => before(this.heap[a] as IndexEntry, this.heap[b] as IndexEntry);
    while (frontier.length > 0 && out.length < limit) {
      const p = popMin(frontier, lessPos);
      const e = this.heap[p] as IndexEntry;
      if (e.dueAt > now) break; // frontier minimum is past now, so is everything left
      if (exclude === undefined || !exclude.has(e.id)) out.push(e.id);
      const l = 2 * p + 1;
      if (l < this.heap.length) pushPos(frontier, l, lessPos);
      if (l + 1 < this.heap.length) pushPos(frontier, l + 1, lessPos);
    }
    return out;
  }

  /** The earliest due time of any message, for sleeping until then; undefined when empty. */
  nextDueAt(): number | undefined {
    return this.heap[0]?.dueAt;
  }

  /** Message counts by bucket and the oldest arrival time. */
  stats(): IndexStats {
    if (this.oldestStale) {
      this.oldest = undefined;
      for (const e of this.heap) if (this.oldest === undefined || e.receivedAt < this.oldest.receivedAt) this.oldest = e;
      this.oldestStale = false;
    }
    if (this.oldestQueuedStale) {
      this.oldestQueued = undefined;
      for (const e of this.heap) if (e.kind === 'queued' && (this.oldestQueued === undefined || e.receivedAt < this.oldestQueued.receivedAt)) this.oldestQueued = e;
      this.oldestQueuedStale = false;
    }
    return {
      messages: this.byId.size,
      byState: { ...this.counts },
      oldestReceivedAt: this.oldest?.receivedAt,
      oldestQueuedReceivedAt: this.oldestQueued?.receivedAt,
    };
  }

  /** Every indexed entry, in no particular order. */
  entries(): IterableIterator<IndexEntry> {
    return this.byId.values();
  }

  private up(i: number): void {
    const h = this.heap;
    const e = h[i] as IndexEntry;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent] as IndexEntry;
      if (!before(e, p)) break;
      h[i] = p;
      p.pos = i;
      i = parent;
    }
    h[i] = e;
    e.pos = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const e = h[i] as IndexEntry;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(h[r] as IndexEntry, h[l] as IndexEntry) ? r : l;
      const child = h[c] as IndexEntry;
      if (!before(child, e)) break;
      h[i] = child;
      child.pos = i;
      i = c;
    }
    h[i] = e;
    e.pos = i;
  }
}

function pushPos(h: number[], v: number, less: (a: number, b: number) => boolean): void {
  let i = h.length;
  h.push(v);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const pv = h[parent] as number;
    if (!less(v, pv)) break;
    h[i] = pv;
    i = parent;
  }
  h[i] = v;
}

function popMin(h: number[], less: (a: number, b: number) => boolean): number {
  const top = h[0] as number;
  const last = h.pop() as number;
  if (h.length === 0) return top;
  let i = 0;
  const n = h.length;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const r = l + 1;
    const c = r < n && less(h[r] as number, h[l] as number) ? r : l;
    if (!less(h[c] as number, last)) break;
    h[i] = h[c] as number;
    i = c;
  }
  h[i] = last;
  return top;
}
