#!/usr/bin/env node
// kubectl plugin launcher: `kubectl mailrelay ...` runs this as kubectl-mailrelay (install
// it on PATH under that name, e.g. npm's bin link). It runs the compiled plugin in dist/
// (`npm run build`), like bin/mailrelay.mjs: tsx is a dev dependency only.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/operator/kubectl-plugin.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('kubectl-mailrelay: dist/ is missing: run `npm run build` first\n');
  process.exit(1);
}
const { pluginMain } = await import(entry.href);
process.exit(await pluginMain(process.argv.slice(2)));
