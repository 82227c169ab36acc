// Haraka (https://haraka.github.io), installed from the npm registry into a cache directory
// of its own: a real MTA nobody on this project wrote, used as a next hop in interop tests
// and as a peer relay in benchmarks. It is never a dependency of the product, so it is not in
// package.json; `installHaraka` puts it (and any plugins asked for) under
// $XDG_CACHE_HOME/mailrelay/haraka-<version>/, once per machine.
//
// Haraka 3.3 runs on Node 20: npm warns that some of its build-time dependencies
// (node-gyp, nopt) ask for Node 22, which is why scripts are skipped (--ignore-scripts):
// nothing Haraka needs at run time is built by them.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The Haraka release the tests and benchmarks use. */
export const HARAKA_VERSION = '3.3.4';

/** Where an installed Haraka lives. */
export interface HarakaInstall {
  /** The install root (holds node_modules/). */
  root: string;
  /** The `haraka` executable (run with `-c <instance dir>`; `-i <dir>` creates an instance). */
  bin: string;
}

/** The cache root for tools the tests install themselves. */
export function toolCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'mailrelay');
}

/**
 * Installs Haraka (and the npm packages in `extra`, e.g. plugins such as `haraka-plugin-limit`)
 * into the tool cache, unless that exact set is already there; returns where it is.
 */
export async function installHaraka(extra: readonly string[] = [], version = HARAKA_VERSION): Promise<HarakaInstall> {
  const key = [`haraka-${version}`, ...[...extra].sort()].join('+').replace(/[^A-Za-z0-9.+@_-]/g, '_');
  const root = join(toolCacheDir(), key);
  const bin = join(root, 'node_modules', '.bin', 'haraka');
  const done = join(root, '.installed');
  if (existsSync(done)) return { root, bin };
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'mailrelay-haraka-peer', private: true }));
  await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--no-save', `Haraka@${version}`, ...extra], {
    cwd: root, maxBuffer: 16 * 1024 * 1024, timeout: 300_000,
  });
  if (!existsSync(bin)) throw new Error(`Haraka ${version} installed into ${root}, but ${bin} is missing`);
  writeFileSync(done, new Date().toISOString());
  return { root, bin };
}
