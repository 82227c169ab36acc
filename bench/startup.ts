// CLI start time and the relay's idle memory: the compiled CLI (bin/mailrelay.mjs ->
// dist/, what the image and the preStop hook run) against the TypeScript sources loaded
// through tsx, side by side in one run. With --baseline DIR, also a checkout of an older
// commit run through its own bin/mailrelay.mjs (e.g. `git worktree add /tmp/base <commit>`
// with its node_modules), which is how "before the compiled build" is measured.
//
//   npm run bench:startup [-- --runs 30 --rss-runs 5 --baseline /tmp/base]
//
// Start time: hyperfine (-N, warm-up runs first, so the page cache and tsx's transform cache
// are warm; three rounds over all variants), `--help` and `drain` against a port where
// nothing listens (the preStop hook's start-up, up to its first connection attempt). Also the tsx loader with its cache off,
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

/**
 * Each variant running `args`: median wall seconds and mean CPU seconds (user + system; less
 * sensitive than wall time to other jobs on the machine). Three hyperfine rounds, each over
 * every variant, so that a change in load hits them all alike.
 */
function startTimes(args: string[]): { wall: number; cpu: number }[] {
  const dir = mkdtempSync(join(tmpdir(), 'bench-startup-'));
  const json = join(dir, 'out.json');
  // -N runs without a shell; env assignments need one, so those go through `env`.
  const cmds = variants.map((v) => [...(v.env ? ['env', ...Object.entries(v.env).map(([k, x]) => `${k}=${x}`)] : []), ...v.argv, ...args].map(quote).join(' '));
  const times = variants.map(() => [] as number[]);
  const cpu = variants.map(() => [] as number[]);
  const rounds = 3;
  for (let round = 0; round < rounds; round++) {
    const r = spawnSync('hyperfine', ['-N', '--warmup', '3', '--runs', String(Math.ceil(runs / rounds)), '-i', '--style', 'basic', '--export-json', json, ...cmds], { stdio: ['ignore', 'inherit', 'inherit'], cwd: ROOT });
    if (r.status !== 0) throw new Error('hyperfine failed');
    const out = JSON.parse(readFileSync(json, 'utf8')) as { results: { times: number[]; user: number; system: number }[] };
    out.results.forEach((x, i) => {
      times[i]!.push(...x.times);
      cpu[i]!.push(x.user + x.system);
    });
  }
  rmSync(dir, { recursive: true, force: true });
  return variants.map((_, i) => ({ wall: median(times[i]!), cpu: cpu[i]!.reduce((a, b) => a + b, 0) / cpu[i]!.length }));
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
const ms = (x: number): string => `${(x * 1000).toFixed(0)} ms`;
console.log('| variant | `--help` wall (median) | `--help` CPU | `drain` wall (median) | `drain` CPU | idle relay RSS (median) |');
console.log('|---|---:|---:|---:|---:|---:|');
let r = 0;
variants.forEach((v, i) => {
  const mem = v.env ? '-' : `${(rss[r++]! / 1024).toFixed(1)} MiB`;
  const h = help[i]!, d = drain[i]!, h0 = help[0]!, d0 = drain[0]!;
  console.log(`| ${v.name} | ${ms(h.wall)} (${(h.wall / h0.wall).toFixed(2)}x) | ${ms(h.cpu)} | ${ms(d.wall)} (${(d.wall / d0.wall).toFixed(2)}x) | ${ms(d.cpu)} | ${mem} |`);
});
