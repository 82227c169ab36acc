#!/usr/bin/env node
// kubectl plugin launcher: `kubectl mailrelay ...` runs this as kubectl-mailrelay (install
// it on PATH under that name, e.g. npm's bin link). Loads the TypeScript sources through tsx.
import { register } from 'tsx/esm/api';

register();
const { pluginMain } = await import('../operator/kubectl-plugin.ts');
process.exit(await pluginMain(process.argv.slice(2)));
