// Fuzzing the pure client session: random transactions against random server scripts
// (any reply in any phase, garbage, timeouts, lost connections). No step throws, none
// modifies its input, no command line carries an injected CR/LF, nothing is written after
// close, and every transaction ends with one result per recipient, accepted only on a 2xx
// to its final dot or BDAT LAST. Bounded for CI; `npm run fuzz` runs it for FUZZ_SECONDS.
import { test } from 'node:test';
import { clientSessionTargets } from '../fuzz/client-session.ts';
import { runTarget } from '../fuzz/harness.ts';

for (const target of clientSessionTargets) {
  test(`fuzz ${target.name}`, async (t) => {
    const out = await runTarget(target, target.ci);
    t.diagnostic(`${out.runs} runs in ${out.ms} ms`);
  });
}
