// Command-line parsing shared by every `mailrelay` subcommand, so they all follow the same
// conventions: -h/--help prints the usage on stdout (exit 0), and any mistake is a
// UsageError (exit 2) whose message names the flag and the value at fault.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A command-line mistake: the caller prints the message and the usage, and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Flags and positionals, or help: true when -h/--help was given (then nothing else is checked). */
export type Parsed<O extends Options> = { help: true } | { help: false; values: Record<keyof O, string | boolean | string[] | undefined>; positionals: string[] };

/** parseArgs with -h/--help added and its errors turned into UsageErrors that name the flag. */
export function parseFlags<O extends Options>(argv: string[], options: O, allowPositionals = false): Parsed<O> {
  if (argv.includes('-h') || argv.includes('--help')) return { help: true };
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals, strict: true });
    return { help: false, values: values as unknown as Record<keyof O, string | boolean | string[] | undefined>, positionals };
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flag = /'([^']+)'/.exec(e.message)?.[1] ?? '';
      throw new UsageError(`unknown option ${flag}`);
    }
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      // "Option '--port <value>' argument missing" or "... does not take an argument".
      const flag = /'(-[^ ']+)/.exec(e.message)?.[1] ?? '';
      throw new UsageError(/missing/.test(e.message) ? `${flag} needs a value` : `${flag} takes no value`);
    }
    if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      const arg = /'([^']+)'/.exec(e.message)?.[1] ?? '';
      throw new UsageError(`unexpected argument ${arg}`);
    }
    throw err;
  }
}

/** A TCP port flag (0-65535); undefined when not given. */
export function portFlag(flag: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v);
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  if (!(n >= 0 && n <= 65535)) throw new UsageError(`--${flag} ${s}: expected a port number (0-65535)`);
  return n;
}

/** A positive number of seconds; def when not given. */
export function secondsFlag(flag: string, v: unknown, def: number): number {
  if (v === undefined) return def;
  const s = String(v);
  const n = /^\d+(\.\d+)?$/.test(s) ? Number(s) : NaN;
  if (!(n > 0)) throw new UsageError(`--${flag} ${s}: expected a number of seconds`);
  return n;
}

const DURATION_UNITS = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** A duration such as 90s, 30m, 4h, 2d (or plain seconds), in seconds; undefined when not given. */
export function durationFlag(flag: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v);
  if (/^\d+$/.test(s)) return Number(s);
  if (!/^(\d+(\.\d+)?[smhd])+$/.test(s)) throw new UsageError(`--${flag} ${s}: expected a duration such as 90s, 30m, 4h or 2d`);
  let seconds = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)([smhd])/g)) seconds += Number(m[1]) * DURATION_UNITS[m[2] as keyof typeof DURATION_UNITS];
  return seconds;
}

/** One of a fixed set of words; undefined when not given. */
export function enumFlag<T extends string>(flag: string, v: unknown, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  const s = String(v);
  if (!(allowed as readonly string[]).includes(s)) throw new UsageError(`--${flag} ${s}: expected one of ${allowed.join(', ')}`);
  return s as T;
}
