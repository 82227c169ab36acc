#!/usr/bin/env node
// Runs every *.test.ts under relay/, operator/ and test/ with node's test runner
// (Node 20 does not expand globs, so the files are listed here), then fails if
// any test was skipped or marked todo, or if no test ran at all.
// Before the tests it does the machine's set-up, so `npm test` works on a fresh machine:
// scripts/install-system-deps.sh (the Debian tools; needs root when something is missing)
// and scripts/build-control-plane.sh (kube-apiserver, etcd, helm, ... from pinned Go
// modules into a versioned cache: tens of minutes once, a second when warm).
// MAILRELAY_SKIP_SETUP=1 skips both (e.g. when .ci/run already did them).
// Usage: node scripts/run-tests.mjs [substring-filter ...]
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync, readFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ensureBuild } from './build.mjs';

const roots = ['relay', 'operator', 'test', 'scripts'];
const filters = process.argv.slice(2);

function walk(dir, out) {
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const files = roots.flatMap((r) => walk(r, [])).sort()
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}

if (process.env.MAILRELAY_SKIP_SETUP !== '1') {
  const deps = spawnSync('bash', ['scripts/install-system-deps.sh'], { stdio: 'inherit' });
  if (deps.status !== 0) process.exit(deps.status ?? 1);
}
if (!process.env.MAILRELAY_CLUSTER_BIN) {
  const t0 = Date.now();
  const build = spawnSync('bash', ['scripts/build-control-plane.sh'], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (build.status !== 0) {
    console.error('run-tests: scripts/build-control-plane.sh failed');
    process.exit(build.status ?? 1);
  }
  // The test processes find kube-apiserver, etcd, kubectl and helm here.
  process.env.MAILRELAY_CLUSTER_BIN = build.stdout.trim().split('\n').at(-1);
  if (Date.now() - t0 > 5000) console.error(`run-tests: control plane built in ${Math.round((Date.now() - t0) / 1000)} s`);
}
// Tests that start the CLI run the compiled one (bin/mailrelay.mjs -> dist/), as the image does.
ensureBuild();
// Tests that run the image (test/helpers/image.ts) get it built before their clock starts:
// a build takes minutes, a check that it is up to date seconds.
if (files.some((f) => readFileSync(f, 'utf8').includes('helpers/image.ts'))) {
  const r = spawnSync('bash', [join('scripts', 'build-image.sh')], { stdio: 'inherit' });
  if (r.status !== 0) { console.error('run-tests: scripts/build-image.sh failed'); process.exit(1); }
}

const tapFile = join(mkdtempSync(join(tmpdir(), 'mailrelay-tests-')), 'results.tap');
const args = [
  '--import', 'tsx',
  '--test',
  `--test-concurrency=${process.env.TEST_CONCURRENCY ?? '2'}`,
  // A test/cluster file is one long scenario on its own control plane (node counts a file as a test).
  `--test-timeout=${process.env.TEST_TIMEOUT_MS ?? (files.some((f) => f.includes('test/cluster/')) ? '900000' : '180000')}`,
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  '--test-reporter=tap', `--test-reporter-destination=${tapFile}`,
  ...files,
];
const child = spawn(process.execPath, args, { stdio: 'inherit' });
child.on('exit', (code, signal) => {
  const tap = readFileSync(tapFile, 'utf8');
  // The summary lines node's TAP reporter prints at the very end.
  const count = (k) => Number((tap.match(new RegExp(`^# ${k} (\\d+)$`, 'm')) ?? [])[1] ?? 0);
  const pass = count('pass'), fail = count('fail'), skipped = count('skipped'), todo = count('todo'), cancelled = count('cancelled');
  let ok = code === 0 && signal === null;
  if (skipped > 0 || todo > 0) { console.error(`run-tests: ${skipped} skipped and ${todo} todo tests: CI runs everything`); ok = false; }
  if (pass === 0) { console.error('run-tests: no test ran'); ok = false; }
  if (cancelled > 0) { console.error(`run-tests: ${cancelled} tests were cancelled`); ok = false; }
  console.log(`${pass} passed, ${fail + cancelled} failed, ${skipped + todo} skipped`);
  process.exit(ok ? 0 : 1);
});
