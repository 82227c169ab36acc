// A keyed work queue in the style of client-go's rate-limited workqueue:
//  - a key waiting in the queue is queued once, however many events ask for it;
//  - a key is processed by one worker at a time; a key added while it is being processed
//    is queued again when that run ends (the run may have read the old state);
//  - failures back off per key, exponentially up to a cap; success resets the key;
//  - stop() drops what is queued and aborts the runs in flight through their AbortSignal.
// Depth (keys waiting) is reported through a callback (the workqueueDepth gauge).

/** How one run of a key ended. */
export type RunOutcome =
  /** Done; the key's backoff is reset. requeueAfterMs schedules another run (polling). */
  | { kind: 'done'; requeueAfterMs?: number }
  /** Failed; the key runs again after its backoff. */
  | { kind: 'retry' };

/** Options of a WorkQueue. */
export interface WorkQueueOptions {
  /** Processes one key. Exceptions count as { kind: 'retry' }. */
  process: (key: string, signal: AbortSignal) => Promise<RunOutcome>;
  /** Parallel workers (different keys only). Default 2. */
  workers?: number;
  /** First retry delay. Default 500 ms. */
  baseDelayMs?: number;
  /** Longest retry delay. Default 5 min. */
  maxDelayMs?: number;
  /** Called whenever the number of waiting keys changes. */
  onDepth?: (depth: number) => void;
  /** Called with an exception thrown by process. */
  onError?: (key: string, err: unknown) => void;
}

/** The keyed, deduplicating, per-key-backoff work queue. */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  /** Keys added while being processed: requeued when their run ends. */
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; due: number }>();
  private running = false;
  private abort = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly workers: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  /** Builds a stopped queue; call start(). */
  constructor(private readonly opts: WorkQueueOptions) {
    this.workers = opts.workers ?? 2;
    this.baseDelayMs = opts.baseDelayMs ?? 500;
    this.maxDelayMs = opts.maxDelayMs ?? 300_000;
  }

  /** Keys waiting to be processed. */
  get depth(): number {
    return this.queue.length;
  }

  /** True when no key is waiting or being processed (delayed adds may be pending). */
  get idle(): boolean {
    return this.queue.length === 0 && this.processing.size === 0;
  }

  /** True between start() and stop(). */
  get started(): boolean {
    return this.running;
  }

  /** Consecutive failures of a key (0 after a success). */
  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Starts the workers. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    this.pump();
  }

  /** Stops: drops waiting keys and timers, aborts runs in flight and waits for them to return. */
  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort(new Error('work queue stopped'));
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    this.dirty.clear();
    this.failures.clear();
    this.report();
    await Promise.allSettled([...this.inFlight]);
  }

  /** Queues a key now (ignored while stopped). */
  add(key: string): void {
    if (!this.running) return;
    const pending = this.timers.get(key);
    if (pending) {
      clearTimeout(pending.timer);
      this.timers.delete(key);
    }
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.report();
    this.pump();
  }

  /** Queues a key after a delay; if it is already waiting or due sooner, the sooner time wins. */
  addAfter(key: string, ms: number): void {
    if (!this.running) return;
    if (ms <= 0) return this.add(key);
    if (this.queued.has(key)) return;
    const due = Date.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.due <= due) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    this.timers.set(key, { timer, due });
  }

  /** Forgets a key's failures and any pending delayed add (e.g. its object was deleted). */
  forget(key: string): void {
    this.failures.delete(key);
    const pending = this.timers.get(key);
    if (pending) clearTimeout(pending.timer);
    this.timers.delete(key);
  }

  /** The backoff before the next retry of a key that has failed `n` times in a row. */
  backoffFor(n: number): number {
    return Math.min(this.baseDelayMs * 2 ** Math.max(0, n - 1), this.maxDelayMs);
  }

  private report(): void {
    this.opts.onDepth?.(this.queue.length);
  }

  private pump(): void {
    while (this.running && this.processing.size < this.workers && this.queue.length > 0) {
      const key = this.queue.shift() as string;
      this.queued.delete(key);
      this.processing.add(key);
      this.report();
      const run = this.run(key);
      this.inFlight.add(run);
      void run.finally(() => this.inFlight.delete(run));
    }
  }

  private async run(key: string): Promise<void> {
    let outcome: RunOutcome;
    try {
      outcome = await this.opts.process(key, this.abort.signal);
    } catch (err) {
      this.opts.onError?.(key, err);
      outcome = { kind: 'retry' };
    }
    this.processing.delete(key);
    if (!this.running) return;
    const again = this.dirty.delete(key);
    if (outcome.kind === 'retry') {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      // As client-go: a change that arrived during the run is looked at now (it may be the
      // fix); otherwise the key waits out its backoff. The failure count keeps growing
      // either way, so repeated failures still slow down.
      if (again) this.add(key);
      else this.addAfter(key, this.backoffFor(n));
    } else {
      this.failures.delete(key);
      if (again) this.add(key);
      else if (outcome.requeueAfterMs !== undefined) this.addAfter(key, outcome.requeueAfterMs);
    }
    this.pump();
  }
}
