// Runs fuzz properties within a budget of runs AND time, so the same properties serve the
// CI (a few hundred runs, seconds) and `npm run fuzz` (FUZZ_SECONDS of runs).
import fc from 'fast-check';

/** How long and how often to run a property. */
export interface FuzzBudget {
  /** Upper bound on runs. */
  numRuns: number;
  /** Stop starting new runs after this many ms (runs already started finish). */
  timeMs: number;
  /** fast-check seed, to replay a failure (printed in the failure report). */
  seed?: number;
}

/** What one property did within its budget. */
export interface FuzzOutcome {
  name: string;
  runs: number;
  ms: number;
  interrupted: boolean;
  /** What `verify` reported. */
  notes?: string;
}

/** Any fast-check property: targets differ in the tuples of values they generate; the harness only runs them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the generated tuple type is the target's business
export type AnyProperty = fc.IRawProperty<any, boolean>;

/** A named property; network properties may need `setup` and `teardown` around all runs. */
export interface FuzzTarget<T = unknown> {
  name: string;
  /** Budget for the CI run (test/relay/fuzz-*.test.ts). */
  ci: { numRuns: number; timeMs: number };
  /** Creates the property (after setup). */
  property(ctx: T): AnyProperty;
  setup?(): Promise<T>;
  /** Checks across all runs (e.g. nothing acknowledged was lost), after the property passed; throws on failure. */
  verify?(ctx: T): Promise<string>;
  teardown?(ctx: T): Promise<void>;
}

/** Runs one target within the budget; throws with fast-check's report (seed, counterexample) on failure. */
export async function runTarget<T>(target: FuzzTarget<T>, budget: FuzzBudget): Promise<FuzzOutcome> {
  const started = performance.now();
  const ctx = (target.setup ? await target.setup() : undefined) as T;
  try {
    const details = await fc.check(target.property(ctx) as fc.IAsyncProperty<unknown>, {
      numRuns: budget.numRuns,
      seed: budget.seed,
      plugins: [fc.interruptAfterTimeLimit(budget.timeMs)],
    });
    if (details.failed) {
      const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
      throw new Error(`fuzz ${target.name}: ${fc.defaultReportMessage(details) ?? 'failed'}\nCause: ${cause}`);
    }
    const notes = target.verify ? await target.verify(ctx) : undefined;
    return { name: target.name, runs: details.numRuns, ms: Math.round(performance.now() - started), interrupted: details.interrupted, notes };
  } finally {
    if (target.teardown) await target.teardown(ctx);
  }
}
