// CLI start time and the relay's idle memory: the compiled CLI (bin/mailrelay.mjs ->
// dist/, what the image and the preStop hook run) against the TypeScript sources loaded
// through tsx, side by side in one run. With --baseline DIR, also a checkout of an older
// commit run through its own bin/mailrelay.mjs (e.g. `git worktree add /tmp/base <commit>`
// with its node_modules), which is how "before the compiled build" is measured.
//
//   npm run bench:startup [-- --runs 30 --rss-runs 5 --baseline /tmp/base]
//
// Start time: hyperfine (-N, warm-up runs first, so the page cache and tsx's transform cache
// are warm), `--help` and `drain` against a port where nothing listens (the preStop hook's
// start-up, up to its first connection attempt). Also the tsx loader with its cache off,
// which is what a fresh pod's first start (an empty /tmp) pays.
// Idle RSS: `relay --config` with a loopback smarthost config, read from /proc/PID/status
// (VmRSS) 5 s after /readyz answers 200, median of --rss-runs starts.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { testRelayConfig } from '../test/helpers/relay.ts';
import { freePort, killPid, sleep } from './relay-procs.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { runs: { type: 'string', default: '30' }, 'rss-runs': { type: 'string', default: '5' }, baseline: { type: 'string' } } });
const runs = Number(values.runs);
const rssRuns = Number(values['rss-runs']);

interface Variant { name: string; argv: string[]; env?: Record<string, string> }
const variants: Variant[] = [
  { name: 'compiled (bin/mailrelay.mjs -> dist/)', argv: [process.execPath, join(ROOT, 'bin', 'mailrelay.mjs')] },
  { name: 'tsx loader, TypeScript sources', argv: [process.execPath, '--import', 'tsx', join(ROOT, 'relay', 'main.ts')] },
  { name: 'tsx loader, cache off (a fresh pod)', argv: [process.execPath, '--import', 'tsx', join(ROOT, 'relay', 'main.ts')], env: { TSX_DISABLE_CACHE: '1' } },
];
if (values.baseline) variants.push({ name: `baseline ${values.baseline} (its bin/mailrelay.mjs)`, argv: [process.execPath, join(values.baseline, 'bin', 'mailrelay.mjs')] });

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const quote = (a: string): string => (/^[\w./:=-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

/** Median wall seconds of each variant running `args`, from one hyperfine run (so the variants interleave in time). */
function startTimes(args: string[]): number[] {
  const dir = mkdtempSync(join(tmpdir(), 'bench-startup-'));
  const json = join(dir, 'out.json');
  const cmds = variants.map((v) => [...Object.entries(v.env ?? {}).map(([k, x]) => `${k}=${x}`), ...v.argv, ...args].map(quote).join(' '));
  // -N runs without a shell; env assignments need one, so those go through `env`.
  const hf = cmds.map((c, i) => (variants[i]!.env ? `env ${c}` : c));
  const r = spawnSync('hyperfine', ['-N', '--warmup', '3', '--runs', String(runs), '-i', '--export-json', json, ...hf], { stdio: ['ignore', 'inherit', 'inherit'], cwd: ROOT });
  if (r.status !== 0) throw new Error('hyperfine failed');
  const out = JSON.parse(readFileSync(json, 'utf8')) as { results: { median: number }[] };
  rmSync(dir, { recursive: true, force: true });
  return out.results.map((x) => x.median);
}

/** VmRSS (KiB) of an idle relay started by `v`, 5 s after it is ready. */
async function idleRss(v: Variant): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-startup-relay-'));
  const [smtp, http, peer] = [await freePort(), await freePort(), await freePort()];
  const config = testRelayConfig(peer, { inbound: { port: smtp }, http: { host: '127.0.0.1', port: http }, log: { level: 'warn' } }, join(dir, 'spool'));
  writeFileSync(join(dir, 'relay.json'), JSON.stringify(config));
  const proc = spawn(v.argv[0]!, [...v.argv.slice(1), 'relay', '--config', join(dir, 'relay.json')], { env: { ...process.env, ...v.env }, stdio: 'ignore' });
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${http}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`${v.name}: relay not ready`);
      await sleep(100);
    }
    await sleep(5000);
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
    return Number(m?.[1]);
  } finally {
    killPid(proc.pid);
    rmSync(dir, { recursive: true, force: true });
  }
}

spawnSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { stdio: 'inherit' });
console.log(`load average: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
const help = startTimes(['--help']);
const drain = startTimes(['drain', '--url', 'http://127.0.0.1:9', '--timeout', '1']);
const rss: number[] = [];
for (const v of variants.filter((x) => !x.env)) {
  const xs: number[] = [];
  for (let i = 0; i < rssRuns; i++) xs.push(await idleRss(v));
  rss.push(median(xs));
}
console.log(`load average: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
console.log('| variant | `--help` median | `drain` median | idle relay RSS (median) |');
console.log('|---|---:|---:|---:|');
let r = 0;
variants.forEach((v, i) => {
  const mem = v.env ? '-' : `${(rss[r++]! / 1024).toFixed(1)} MiB`;
  console.log(`| ${v.name} | ${(help[i]! * 1000).toFixed(0)} ms (${(help[i]! / help[0]!).toFixed(2)}x) | ${(drain[i]! * 1000).toFixed(0)} ms (${(drain[i]! / drain[0]!).toFixed(2)}x) | ${mem} |`);
});
