// Fuzzing the reply parser: valid, mutated and random reply streams split at random points
// never throw, keep the parser's buffers bounded, and give the same replies for any split.
// Bounded for CI; `npm run fuzz` runs the same properties for FUZZ_SECONDS.
import { test } from 'node:test';
import { replyParserTargets } from '../fuzz/reply-parser.ts';
import { runTarget } from '../fuzz/harness.ts';

for (const target of replyParserTargets) {
  test(`fuzz ${target.name}`, async (t) => {
    const out = await runTarget(target, target.ci);
    t.diagnostic(`${out.runs} runs in ${out.ms} ms`);
  });
}
