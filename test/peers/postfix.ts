// Postfix's smtp-sink and smtp-source as real SMTP peers nobody on this project wrote:
// smtp-sink is a fast accepting server (optionally dumping each message to a file),
// smtp-source a parallel load generator. Both come from Debian's postfix package
// (installed by .ci/run); they live in /usr/sbin, which may not be on a user's PATH.
//
// smtp-sink flags used here (postfix 3.7, `man smtp-sink`):
//   -c counters on stdout ("sess=N quit=N mesg=N\r" after each session end, QUIT and ".")
//   -p no PIPELINING · -E no ENHANCEDSTATUSCODES keyword (replies keep their enhanced codes)
//   -8 no 8BITMIME · -a no AUTH · -C no XCLIENT · -F no XFORWARD · -e no ESMTP (EHLO refused)
//   -h hostname · -d dump-template (one file per message) · -m max concurrency · -L LMTP
//   -f/-r cmds: hard/soft reject (both imply -p) · -B/-b hard/soft reply text
//   -q cmds: disconnect without reply · -Q cmds: 421 and disconnect · -W cmd:delay[:odds]
//   -t timeout · -u user (required when running as root) · "host:port backlog"
// smtp-sink has no CHUNKING/BDAT at all (BDAT gets "500 5.5.1 Error: unknown command"),
// and no SIZE, SMTPUTF8 or STARTTLS; use raw-server.ts or fault-server.ts for those.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { delay, waitFor as pollUntil } from './wait.ts';

/** Absolute path of a postfix test tool (`smtp-sink`, `smtp-source`), from PATH or /usr/sbin. */
export function findPostfixTool(name: 'smtp-sink' | 'smtp-source'): string {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/usr/lib/postfix/sbin'];
  for (const dir of dirs) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  throw new Error(`${name} not found (install Debian's postfix package; see .ci/run)`);
}

/** Options of an smtp-sink instance; defaults are smtp-sink's own (it announces PIPELINING, 8BITMIME, AUTH, XCLIENT, XFORWARD, ENHANCEDSTATUSCODES, DSN). */
export interface SmtpSinkOptions {
  /** Announce PIPELINING (default true; false passes -p). */
  pipelining?: boolean;
  /** smtp-sink cannot do CHUNKING: only false/undefined is accepted. */
  chunking?: false;
  /** Announce the ENHANCEDSTATUSCODES keyword (default true; false passes -E, but replies still carry enhanced codes). */
  enhancedStatusCodes?: boolean;
  /** Announce 8BITMIME (default true; false passes -8). */
  eightBitMime?: boolean;
  /** Announce AUTH (default true; false passes -a). */
  auth?: boolean;
  /** Announce XCLIENT and XFORWARD (default true; false passes -C -F). */
  xclientXforward?: boolean;
  /** Speak ESMTP (default true; false passes -e: EHLO is refused, only HELO works). */
  esmtp?: boolean;
  /** Hostname in greeting and HELO/EHLO replies (-h; default smtp-sink's `smtp-sink`). */
  hostname?: string;
  /** Dump each message to a file in a temporary directory (removed on close); see messages(). */
  dump?: boolean;
  /** Dump each message to a file in this directory instead (kept; made world-writable when running as root). */
  dumpDir?: string;
  /** Commands to reject with the hard reply (-f; implies no PIPELINING), e.g. ['RCPT'] or ['.']. */
  hardReject?: string[];
  /** Commands to reject with the soft reply (-r; implies no PIPELINING). */
  softReject?: string[];
  /** Hard reject reply (-B; must start with 5xx; default `500 5.3.0 Error: command failed`). */
  hardReply?: string;
  /** Soft reject reply (-b; must start with 4xx; default `450 4.3.0 Error: command failed`). */
  softReply?: string;
  /** Commands after which to disconnect without replying (-q). */
  disconnectAfter?: string[];
  /** Commands to answer with 421 and disconnect (-Q). */
  close421After?: string[];
  /** Per-command reply delays in whole seconds (-W cmd:delay[:odds]). */
  delays?: Array<{ command: string; seconds: number; odds?: number }>;
  /** Maximum simultaneous connections (-m; default 256; more wait in the listen queue). */
  maxConcurrency?: number;
  /** listen(2) backlog (default 1000, for benchmarks). */
  backlog?: number;
  /** Speak LMTP (-L). */
  lmtp?: boolean;
  /** Command/response timeout in seconds (-t; default 100). */
  timeoutSec?: number;
  /** Further raw arguments, placed before the address. */
  extraArgs?: string[];
}

/** smtp-sink's -c counters. */
export interface SinkCounters {
  /** Sessions ended. */
  sessions: number;
  /** QUIT commands received. */
  quits: number;
  /** Messages received (final dots). */
  messages: number;
}

/** One message from an smtp-sink dump file. */
export interface SinkMessage {
  /** Dump file path. */
  file: string;
  /** smtp-sink's id for it (the hex suffix of the file name). */
  id: string;
  /** X-Client-Addr. */
  clientAddr: string;
  /** X-Client-Proto (SMTP, ESMTP or LMTP). */
  clientProto: string;
  /** X-Helo-Args, if the client said HELO/EHLO. */
  heloArgs: string | undefined;
  /** X-Mail-Args: the MAIL FROM arguments (`<addr> PARAMS`). */
  mailArgs: string;
  /** Address in MAIL FROM. */
  from: string;
  /** X-Rcpt-Args, one per RCPT, in order. */
  rcptArgs: string[];
  /** Addresses of the RCPTs, in order. */
  rcpts: string[];
  /** The message as smtp-sink stored it: every CR removed (CRLF → LF) and dot-unstuffed. Not byte-exact; use raw-server.ts for that. */
  content: string;
}

/** A running smtp-sink. */
export interface SmtpSink {
  /** Loopback address. */
  host: string;
  /** Port. */
  port: number;
  /** Process id. */
  pid: number;
  /** The argument list it was started with. */
  args: string[];
  /** Dump directory, if dumping. */
  dumpDir: string | undefined;
  /** Latest -c counters (zeros before the first update). */
  counters(): SinkCounters;
  /** Parsed dump files, oldest first. Files of transactions still in progress are partial: read after the client got its reply. */
  messages(): SinkMessage[];
  /** Resolves with the messages once at least `n` are dumped; rejects after `timeoutMs`. */
  waitForMessages(n: number, timeoutMs: number): Promise<SinkMessage[]>;
  /** Resolves once `predicate(counters)` holds; rejects after `timeoutMs`. */
  waitForCounters(predicate: (c: SinkCounters) => boolean, timeoutMs: number): Promise<void>;
  /** Everything smtp-sink wrote to stderr. */
  stderr(): string;
  /** Stops the process (SIGTERM, then SIGKILL) and removes a temporary dump directory. */
  close(): Promise<void>;
}

/** Asks the kernel for a free loopback port (bind 0, read, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, host, () => resolve());
  });
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('freePort: no TCP address');
  return addr.port;
}

/** True when process `pid` owns a socket listening on 127.0.0.1:`port` (read from /proc, so no probe connection is made). */
function listeningBy(pid: number, port: number): boolean {
  const want = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let inode: string | undefined;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === want && f[3] === '0A') inode = f[9];
  }
  if (inode === undefined) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  return fds.some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`;
    } catch {
      return false;
    }
  });
}

function parseCounters(stdout: string): SinkCounters {
  const all = [...stdout.matchAll(/sess=(\d+) quit=(\d+) mesg=(\d+)/g)];
  const m = all.at(-1);
  return m ? { sessions: Number(m[1]), quits: Number(m[2]), messages: Number(m[3]) } : { sessions: 0, quits: 0, messages: 0 };
}

/** Parses one smtp-sink dump file (format: `man smtp-sink`, DUMP FILE FORMAT). */
export function parseSinkDump(file: string, text: string): SinkMessage {
  const lines = text.split('\n');
  const msg: SinkMessage = {
    file,
    id: /\.([0-9a-f]{8})$/.exec(file)?.[1] ?? '',
    clientAddr: '',
    clientProto: '',
    heloArgs: undefined,
    mailArgs: '',
    from: '',
    rcptArgs: [],
    rcpts: [],
    content: '',
  };
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const m = /^(X-Client-Addr|X-Client-Proto|X-Helo-Args|X-Mail-Args|X-Rcpt-Args|Received): ?(.*)$/.exec(line);
    if (!m) break;
    const v = m[2] ?? '';
    if (m[1] === 'X-Client-Addr') msg.clientAddr = v;
    else if (m[1] === 'X-Client-Proto') msg.clientProto = v;
    else if (m[1] === 'X-Helo-Args') msg.heloArgs = v;
    else if (m[1] === 'X-Mail-Args') msg.mailArgs = v;
    else if (m[1] === 'X-Rcpt-Args') msg.rcptArgs.push(v);
    else {
      i += 3; // Received: plus its two continuation lines
      break;
    }
  }
  const addr = (args: string): string => /^<([^>]*)>/.exec(args)?.[1] ?? args.split(/\s/)[0] ?? '';
  msg.from = addr(msg.mailArgs);
  msg.rcpts = msg.rcptArgs.map(addr);
  // The body ends with the LF of the terminating ".\r\n" (its "." and CR are not stored).
  const body = lines.slice(i).join('\n');
  msg.content = body.endsWith('\n') ? body.slice(0, -1) : body;
  return msg;
}

function sinkArgs(opts: SmtpSinkOptions, port: number, dumpDir: string | undefined): string[] {
  if (opts.chunking) throw new Error('smtp-sink has no CHUNKING support; use raw-server.ts');
  const a: string[] = ['-c'];
  if (process.getuid?.() === 0) a.push('-u', 'nobody');
  if (opts.pipelining === false) a.push('-p');
  if (opts.enhancedStatusCodes === false) a.push('-E');
  if (opts.eightBitMime === false) a.push('-8');
  if (opts.auth === false) a.push('-a');
  if (opts.xclientXforward === false) a.push('-C', '-F');
  if (opts.esmtp === false) a.push('-e');
  if (opts.lmtp) a.push('-L');
  if (opts.hostname !== undefined) a.push('-h', opts.hostname);
  if (dumpDir !== undefined) a.push('-d', join(dumpDir, 'msg.'));
  if (opts.hardReject?.length) a.push('-f', opts.hardReject.join(','));
  if (opts.softReject?.length) a.push('-r', opts.softReject.join(','));
  if (opts.hardReply !== undefined) a.push('-B', opts.hardReply);
  if (opts.softReply !== undefined) a.push('-b', opts.softReply);
  if (opts.disconnectAfter?.length) a.push('-q', opts.disconnectAfter.join(','));
  if (opts.close421After?.length) a.push('-Q', opts.close421After.join(','));
  for (const d of opts.delays ?? []) a.push('-W', `${d.command}:${d.seconds}${d.odds !== undefined ? `:${d.odds}` : ''}`);
  if (opts.maxConcurrency !== undefined) a.push('-m', String(opts.maxConcurrency));
  if (opts.timeoutSec !== undefined) a.push('-t', String(opts.timeoutSec));
  a.push(...(opts.extraArgs ?? []));
  a.push(`127.0.0.1:${port}`, String(opts.backlog ?? 1000));
  return a;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const deadline = Date.now() + 5000;
  while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) {
    await Promise.race([exited, delay(50)]);
  }
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await Promise.race([exited, delay(5000)]);
  }
}

/** Starts smtp-sink on a free 127.0.0.1 port and resolves once it is listening. */
export async function startSmtpSink(opts: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const bin = findPostfixTool('smtp-sink');
  let dumpDir: string | undefined;
  let ownDumpDir = false;
  if (opts.dumpDir !== undefined) {
    dumpDir = opts.dumpDir;
  } else if (opts.dump) {
    dumpDir = mkdtempSync(join(tmpdir(), 'smtp-sink-'));
    ownDumpDir = true;
  }
  // As root smtp-sink drops to `nobody` (-u) before it writes dump files.
  if (dumpDir !== undefined && process.getuid?.() === 0) chmodSync(dumpDir, 0o777);

  let lastErr = '';
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = await freePort();
    const args = sinkArgs(opts, port, dumpDir);
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (b: Buffer) => {
      stdout += b.toString('latin1');
    });
    child.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString('latin1');
    });
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    let failed: Error | undefined;
    void spawnError.then((e) => {
      failed = e;
    });
    const deadline = Date.now() + 10_000;
    let ready = false;
    while (Date.now() < deadline) {
      if (failed) throw failed;
      if (child.exitCode !== null || child.signalCode !== null) break;
      if (child.pid !== undefined && listeningBy(child.pid, port)) {
        ready = true;
        break;
      }
      await delay(10);
    }
    if (!ready) {
      await stopChild(child);
      lastErr = stderr;
      if (/in use/i.test(stderr)) continue;
      throw new Error(`smtp-sink did not start listening on 127.0.0.1:${port}: ${stderr || 'timeout'}`);
    }
    const pid = child.pid ?? 0;
    const sink: SmtpSink = {
      host: '127.0.0.1',
      port,
      pid,
      args,
      dumpDir,
      counters: () => parseCounters(stdout),
      messages() {
        if (dumpDir === undefined) throw new Error('smtp-sink was started without dump');
        const dir = dumpDir;
        return readdirSync(dir)
          .filter((f) => f.startsWith('msg.'))
          .map((f) => parseSinkDump(join(dir, f), readFileSync(join(dir, f), 'latin1')))
          .sort((a, b) => a.file.localeCompare(b.file));
      },
      async waitForMessages(n, timeoutMs) {
        await pollUntil(() => sink.messages().length >= n, timeoutMs, `${n} smtp-sink dump files`);
        return sink.messages();
      },
      waitForCounters(predicate, timeoutMs) {
        return pollUntil(() => predicate(parseCounters(stdout)), timeoutMs, 'smtp-sink counters');
      },
      stderr: () => stderr,
      async close() {
        await stopChild(child);
        if (ownDumpDir && dumpDir !== undefined) rmSync(dumpDir, { recursive: true, force: true });
      },
    };
    return sink;
  }
  throw new Error(`smtp-sink: no free port after 10 attempts: ${lastErr}`);
}

/** Options of one smtp-source run. */
export interface SmtpSourceOptions {
  /** Server port (on `host`). */
  port: number;
  /** Server address (default 127.0.0.1). */
  host?: string;
  /** Messages to send in total (-m; default 1). */
  messages?: number;
  /** Recipients per message (-r; default 1); names are `to`, `2to`, `3to`… by prefixing numbers to the -t address. */
  recipientsPerMessage?: number;
  /** Payload bytes per message, headers not included (-l). */
  sizeBytes?: number;
  /** Parallel sessions (-s; default 1). */
  sessions?: number;
  /** Sender address (-f). */
  from?: string;
  /** Recipient address (-t). */
  to?: string;
  /** HELO name (-M). smtp-source says HELO, not EHLO, and does not pipeline. */
  heloName?: string;
  /** Subject header (-S). */
  subject?: string;
  /** Send all messages of a session over one connection (-d). */
  reuseConnection?: boolean;
  /** Send this pre-formatted message file (-F). */
  messageFile?: string;
  /** Don't abort on unexpected replies (-A). */
  dontAbort?: boolean;
  /** Speak LMTP (-L). */
  lmtp?: boolean;
  /** Kill it after this many ms (default 120000). */
  timeoutMs?: number;
  /** Further raw arguments, placed before the address. */
  extraArgs?: string[];
}

/** The outcome of an smtp-source run. */
export interface SmtpSourceResult {
  /** Exit code (null if killed). */
  code: number | null;
  /** Signal that ended it, if any. */
  signal: NodeJS.Signals | null;
  /** Wall-clock milliseconds from spawn to exit. */
  elapsedMs: number;
  /** Messages it completed (its -c counter). */
  completed: number;
  /** Its stdout. */
  stdout: string;
  /** Its stderr (fatal errors and warnings). */
  stderr: string;
  /** The arguments used. */
  args: string[];
}

/** Runs smtp-source against a server and resolves when it exits (never rejects for a non-zero exit). */
export async function runSmtpSource(opts: SmtpSourceOptions): Promise<SmtpSourceResult> {
  const bin = findPostfixTool('smtp-source');
  const a: string[] = ['-c'];
  if (opts.messages !== undefined) a.push('-m', String(opts.messages));
  if (opts.recipientsPerMessage !== undefined) a.push('-r', String(opts.recipientsPerMessage));
  if (opts.sizeBytes !== undefined) a.push('-l', String(opts.sizeBytes));
  if (opts.sessions !== undefined) a.push('-s', String(opts.sessions));
  if (opts.from !== undefined) a.push('-f', opts.from);
  if (opts.to !== undefined) a.push('-t', opts.to);
  if (opts.heloName !== undefined) a.push('-M', opts.heloName);
  if (opts.subject !== undefined) a.push('-S', opts.subject);
  if (opts.reuseConnection) a.push('-d');
  if (opts.messageFile !== undefined) a.push('-F', opts.messageFile);
  if (opts.dontAbort) a.push('-A');
  if (opts.lmtp) a.push('-L');
  a.push(...(opts.extraArgs ?? []));
  a.push(`${opts.host ?? '127.0.0.1'}:${opts.port}`);
  const started = process.hrtime.bigint();
  const child = spawn(bin, a, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (b: Buffer) => {
    stdout += b.toString('latin1');
  });
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString('latin1');
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  }).finally(() => clearTimeout(timer));
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  const counts = stdout.split(/[\r\n]+/).filter((s) => /^\d+$/.test(s));
  return { code, signal, elapsedMs, completed: Number(counts.at(-1) ?? 0), stdout, stderr, args: a };
}
