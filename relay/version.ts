// The one place the program's version comes from: the `version` of the package.json that
// ships with the code (the repository checkout, or the image's /app). `mailrelay --version`,
// the start log lines, the build_info gauges and the image labels all use it.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/** The mailrelay version (package.json `version`), e.g. "0.1.0"; "unknown" if no package.json is found. */
export function mailrelayVersion(): string {
  if (cached !== undefined) return cached;
  // Walk up from this file: relay/version.ts in a checkout, or a compiled copy a level deeper.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'mailrelay' && typeof pkg.version === 'string') return (cached = pkg.version);
    } catch {
      // not here: one level up
    }
    dir = dirname(dir);
  }
  return (cached = 'unknown');
}

/** What the build_info gauges carry: the mailrelay version and the Node.js runtime version. */
export function buildInfo(): { version: string; nodejs_version: string } {
  return { version: mailrelayVersion(), nodejs_version: process.versions.node };
}
