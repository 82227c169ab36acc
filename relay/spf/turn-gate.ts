// Spreads bursts of SPF work over event-loop turns. A single-flight lookup that hundreds
// of sessions wait on settles in one microtask cascade: every waiter resumes its SPF
// evaluation and answers its client before the loop can run a timer or read a socket
// (measured in the seed-004 test: ~200 waiters of one timed-out HELO lookup held the
// relay's thread for 400 ms of CPU). The same happens when a thousand MAIL commands
// arrive in one poll phase.
//
// A TurnGate lets `perTurn` continuations through per turn; the others wait for a later
// turn, released in arrival order from a setImmediate that re-arms itself while anyone
// waits (an immediate scheduled from an immediate runs in the next loop iteration, after
// timers and I/O). It is not a lock: nothing is held, so nothing can be left held; every
// waiter is released within ceil(position / perTurn) turns, and all the work still
// happens, only interleaved with everyone else's.

/** Lets at most `perTurn` callers through per event-loop turn. */
export class TurnGate {
  private used = 0;
  private armed = false;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly perTurn: number) {}

  /** Undefined when the caller may go on now; otherwise a promise that resolves in a later turn. */
  pass(): Promise<void> | undefined {
    this.arm();
    if (this.waiting.length === 0 && this.used < this.perTurn) {
      this.used++;
      return undefined;
    }
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Callers waiting for a turn. */
  queued(): number {
    return this.waiting.length;
  }

  private arm(): void {
    if (this.armed) return;
    this.armed = true;
    setImmediate(() => this.turn());
  }

  private turn(): void {
    this.armed = false;
    const batch = this.waiting.splice(0, this.perTurn);
    this.used = batch.length;
    for (const release of batch) release();
    // Keep turning while anyone waits; with nobody waiting, `used` resets on the next pass.
    if (this.waiting.length > 0 || this.used > 0) this.arm();
  }
}
