// Fuzzing a real SmtpConnection against a raw TCP server that answers from a random
// script (random and mangled replies, dribbled bytes, delays past the timeouts, silence,
// truncation, endless lines, closes and resets). Every run ends within the timeouts with
// every recipient classified, and nothing is accepted unless the server answered the end
// of the data with a 2xx. Bounded for CI; `npm run fuzz` runs it for FUZZ_SECONDS.
import { test } from 'node:test';
import { connectionOutcomes, connectionTargets } from '../fuzz/connection.ts';
import { runTarget } from '../fuzz/harness.ts';

for (const target of connectionTargets) {
  test(`fuzz ${target.name}`, async (t) => {
    const out = await runTarget(target, target.ci);
    t.diagnostic(`${out.runs} runs in ${out.ms} ms; outcomes: ${JSON.stringify(Object.fromEntries(connectionOutcomes()))}`);
  });
}
