#!/usr/bin/env node
// Keeps dist/ (the compiled CLI that bin/mailrelay.mjs runs; `npm run build`) in step with
// the sources, for whatever runs the CLI from a checkout: `npm start`, the test runner (tests
// spawn the CLI as the image does), the benchmarks. It compiles only when a source or tsconfig
// is newer than the last build, because even tsc's incremental no-op build takes seconds.
// Usage: node scripts/build.mjs [--force]
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The build's record; tsc writes it last, so its mtime is when the last build finished. */
const STAMP = join(ROOT, 'dist', '.tsbuildinfo');

function newestSource() {
  let newest = 0;
  const visit = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) { if (entry.name !== 'testdata' && entry.name !== 'node_modules') visit(p); }
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  visit(join(ROOT, 'relay'));
  visit(join(ROOT, 'operator'));
  for (const f of ['tsconfig.json', 'tsconfig.build.json', 'package-lock.json']) newest = Math.max(newest, statSync(join(ROOT, f)).mtimeMs);
  return newest;
}

/** Compiles relay/ and operator/ into dist/ when dist/ is missing or older than a source (always with force). */
export function ensureBuild({ force = false } = {}) {
  if (!force && existsSync(STAMP) && existsSync(join(ROOT, 'dist', 'relay', 'main.js')) && statSync(STAMP).mtimeMs >= newestSource()) return;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`build: tsc -p tsconfig.build.json failed (exit ${r.status ?? r.signal})`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    ensureBuild({ force: process.argv.includes('--force') });
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
}
