// Group commit: many callers share one durability barrier (here: fsync of the queue
// directory, which makes renames and unlinks durable). A caller's commit() resolves only after
// a barrier that STARTED after the call has completed, because a barrier already in flight
// may have been issued before the caller's rename. While one barrier runs, new callers queue
// up and the next barrier covers all of them: under load, batches grow by themselves and the
// cost per message falls; when idle, a lone caller pays one barrier and no added delay.

/** Tuning for a GroupCommitter. */
export interface GroupCommitOptions {
  /**
   * Wait up to this long for more callers before starting a barrier when none is running
   * (trades a little latency for bigger batches). 0, the default, starts at once.
   */
  maxDelayMs?: number;
  /** Most callers one barrier may cover; 1 disables group commit (for comparison). */
  maxBatch?: number;
}

/** Counters for benchmarks and metrics. */
export interface GroupCommitStats {
  /** Barriers run. */
  barriers: number;
  /** commit() calls resolved or rejected by them. */
  commits: number;
  /** Largest batch seen. */
  maxBatch: number;
}

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** Batches commit() calls so that one barrier call serves every caller queued behind it. */
export class GroupCommitter {
  private readonly waiting: Waiter[] = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly maxDelayMs: number;
  private readonly maxBatch: number;
  private readonly counters: GroupCommitStats = { barriers: 0, commits: 0, maxBatch: 0 };
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly barrier: () => Promise<void>, options: GroupCommitOptions = {}) {
    this.maxDelayMs = Math.max(0, options.maxDelayMs ?? 0);
    this.maxBatch = Math.max(1, Math.floor(options.maxBatch ?? 4096));
  }

  /** Resolves once a barrier issued after this call has succeeded; rejects with its error. */
  commit(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.kick();
    });
  }

  /** Resolves when no barrier is running or queued (for close()). */
  idle(): Promise<void> {
    if (!this.running && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Copy of the counters. */
  stats(): GroupCommitStats {
    return { ...this.counters };
  }

  private kick(): void {
    if (this.running || this.waiting.length === 0) return;
    if (this.maxDelayMs > 0 && this.waiting.length < this.maxBatch) {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.start();
      }, this.maxDelayMs);
      return;
    }
    this.start();
  }

  private start(): void {
    if (this.running || this.waiting.length === 0) return;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.running = true;
    const batch = this.waiting.splice(0, this.maxBatch);
    this.counters.barriers++;
    this.counters.commits += batch.length;
    if (batch.length > this.counters.maxBatch) this.counters.maxBatch = batch.length;
    let barrier: Promise<void>;
    try {
      barrier = this.barrier();
    } catch (e) {
      barrier = Promise.reject(e);
    }
    void barrier.then(
      () => { for (const w of batch) w.resolve(); },
      (e: unknown) => { for (const w of batch) w.reject(e); },
    ).finally(() => {
      this.running = false;
      if (this.waiting.length > 0) {
        // Callers that arrived during the barrier are waiting already: no extra delay for them.
        this.start();
      } else {
        const idle = this.idleWaiters;
        this.idleWaiters = [];
        for (const f of idle) f();
      }
    });
  }
}
