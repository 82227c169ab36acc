// Long fuzzing run: the CI properties (test/relay/fuzz-*.test.ts) for FUZZ_SECONDS in all
// (default 300), split evenly between the targets, with as many runs as fit.
//
//   npx tsx test/fuzz/run.ts [filter...]        (npm run fuzz)
//   FUZZ_SECONDS=3600 FUZZ_SEED=42 FUZZ_STRICT=1 npx tsx test/fuzz/run.ts inbound
//
// FUZZ_SEED replays a run; FUZZ_STRICT=1 fails on the reported bugs in known-issues.ts
// instead of skipping the inputs that hit them. Exits 1 on the first failing property.
import { clientSessionTargets } from './client-session.ts';
import { connectionOutcomes, connectionTargets } from './connection.ts';
import { type FuzzTarget, runTarget } from './harness.ts';
import { inboundTargets } from './inbound.ts';
import { replyParserTargets } from './reply-parser.ts';

const all: FuzzTarget<never>[] = [
  ...replyParserTargets, ...clientSessionTargets, ...connectionTargets, ...inboundTargets,
] as FuzzTarget<never>[];

async function main(): Promise<number> {
  const filters = process.argv.slice(2);
  const targets = all.filter((t) => filters.length === 0 || filters.some((f) => t.name.includes(f)));
  if (targets.length === 0) {
    console.error(`no fuzz target matches ${filters.join(' ')}; targets: ${all.map((t) => t.name).join(', ')}`);
    return 2;
  }
  const seconds = Number(process.env.FUZZ_SECONDS ?? 300);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`FUZZ_SECONDS must be a positive number, got ${process.env.FUZZ_SECONDS}`);
  const seed = process.env.FUZZ_SEED === undefined ? Date.now() ^ (Math.random() * 0x7fffffff) : Number(process.env.FUZZ_SEED);
  const each = (seconds * 1000) / targets.length;
  console.log(`fuzzing ${targets.length} targets for ${seconds} s (${Math.round(each / 1000)} s each), seed ${seed}`);
  for (const t of targets) {
    try {
      const out = await runTarget(t, { numRuns: Number.MAX_SAFE_INTEGER, timeMs: each, seed });
      console.log(`ok   ${out.name}: ${out.runs} runs in ${(out.ms / 1000).toFixed(1)} s${out.notes ? `; ${out.notes}` : ''}`);
    } catch (err) {
      console.log(`FAIL ${t.name} (replay: FUZZ_SEED=${seed} npx tsx test/fuzz/run.ts ${t.name})\n${(err as Error).message}`);
      return 1;
    }
  }
  const outcomes = Object.fromEntries(connectionOutcomes());
  if (Object.keys(outcomes).length > 0) console.log(`smtp-connection outcomes: ${JSON.stringify(outcomes)}`);
  return 0;
}

main().then((code) => process.exit(code), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
