#!/usr/bin/env node
// Launcher: loads the TypeScript sources through tsx's loader (no build step), then runs main.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../relay/main.ts');
const code = await main(process.argv.slice(2));
process.exit(code);
