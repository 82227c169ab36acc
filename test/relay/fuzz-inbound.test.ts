// Fuzzing the relay's inbound listener over raw sockets: random and mutated command lines,
// lock-step and pipelined, and messages with dot-lines and bare line feeds. Every line gets
// a well-formed reply (4xx/5xx with an enhanced code), the relay keeps serving a good
// client, and every acknowledged message reaches the peer or bounces to its sender.
// Bounded for CI; `npm run fuzz` runs it for FUZZ_SECONDS.
import { test } from 'node:test';
import { inboundTargets } from '../fuzz/inbound.ts';
import { runTarget } from '../fuzz/harness.ts';

for (const target of inboundTargets) {
  test(`fuzz ${target.name}`, async (t) => {
    const out = await runTarget(target, target.ci);
    t.diagnostic(`${out.runs} runs in ${out.ms} ms; ${out.notes ?? ''}`);
  });
}
