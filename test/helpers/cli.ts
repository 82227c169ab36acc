// The `mailrelay` CLI for tests: the real launcher (bin/mailrelay.mjs, the compiled dist/ as
// the image runs it) in a child process, or main() in this process, with what it printed.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { main } from '../../relay/main.ts';

/** The launcher the image and the preStop hook run. */
export const CLI = fileURLToPath(new URL('../../bin/mailrelay.mjs', import.meta.url));

/** What a CLI run printed, and its exit status (null when killed). */
export interface CliRun { status: number | null; stdout: string; stderr: string; ms: number }

/**
 * Runs `mailrelay ARGS` in a child process with process.env minus `unset`, plus `env`; killed
 * after `timeoutMs` so that a command that hangs fails the test.
 */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; unset?: string[]; timeoutMs?: number } = {}): Promise<CliRun> {
  const started = Date.now();
  const inherited = { ...process.env };
  for (const k of opts.unset ?? []) delete inherited[k];
  const env = { ...inherited, ...opts.env };
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** `mailrelay ARGS` in this process (main() with captured output), with `env` set for the call only. */
export async function runCliInProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const started = Date.now();
  let stdout = '';
  let stderr = '';
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const status = await main(args, { out: (t) => { stdout += t; }, err: (t) => { stderr += t; } });
    return { status, stdout, stderr, ms: Date.now() - started };
  } finally {
    for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
  }
}
