#!/usr/bin/env node
// The mailrelay command. It runs the compiled CLI in dist/ (`npm run build`): the image and
// the relay pods' preStop hook run this file, and compiled JavaScript starts without a
// TypeScript loader (docs/benchmarks.md, "CLI start-up").
import { existsSync } from 'node:fs';

const entry = new URL('../dist/relay/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('mailrelay: dist/ is missing: run `npm run build` first\n');
  process.exit(1);
}
const { main } = await import(entry.href);
const code = await main(process.argv.slice(2));
process.exit(code);
