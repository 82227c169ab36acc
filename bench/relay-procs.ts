// Process plumbing for bench/relay.ts: free ports, CPU time from /proc, cleanup on exit, the
// smtp-sink with its message counter, and smtp-source runs. Loopback only; every wait is bounded.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';

/** Clock ticks per second for /proc/<pid>/stat times. */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Cleanup: everything the bench starts registers a synchronous killer, run on exit and signals.

const cleanups = new Map<number, () => void>();
let nextCleanup = 0;

/** Registers a synchronous cleanup; returns a function that unregisters it. */
export function onCleanup(fn: () => void): () => void {
  const id = nextCleanup++;
  cleanups.set(id, fn);
  return () => { cleanups.delete(id); };
}

/** Runs every registered cleanup (newest first), once. */
export function runCleanups(): void {
  const fns = [...cleanups.entries()].reverse();
  cleanups.clear();
  for (const [, fn] of fns) {
    try {
      fn();
    } catch {
      // best effort: keep cleaning up the rest
    }
  }
}

process.on('exit', runCleanups);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    process.stderr.write(`\nbench: ${sig}: stopping everything\n`);
    runCleanups();
    process.exit(130);
  });
}

/** Kills one process we started, by pid, ignoring "already gone". */
export function killPid(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!pid) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already exited
  }
}

/** True while the process exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Resolves when the child exits, or after timeoutMs (false). */
export function waitExit(proc: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), timeoutMs);
    proc.once('exit', () => { clearTimeout(t); resolve(true); });
  });
}

// ---------------------------------------------------------------------------------------------
// CPU shares on a shared machine

/**
 * The CPU priority of `pid`'s session. Linux autogroup: with kernel.sched_autogroup_enabled, CPU time is shared fairly between
 * sessions first, and nice only ranks processes within one session. Postfix's master
 * daemonizes into a session of its own, so it would get a whole share while an MTA started
 * as our child shares the bench's. Every MTA is therefore started in a session of its own
 * (spawn's `detached`), and each session given the same priority here. Returns false when
 * the kernel has no autogroup (then plain nice is what counts).
 */
export function groupNice(pid: number): number | undefined {
  try {
    const m = / nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Sets the CPU priority of `pid`'s session (autogroup); see groupNice. */
export function setGroupNice(pid: number, nice: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(nice));
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Ports

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r, j) => { s.once('error', j); s.listen(0, '127.0.0.1', () => r()); });
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

export async function waitListening(port: number, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); r(true); });
      c.on('error', () => r(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

// ---------------------------------------------------------------------------------------------
// CPU time from /proc

export interface ProcStat { pid: number; comm: string; ppid: number; self: number; children: number }

/** utime+stime (self) and cutime+cstime (reaped children) of one process, in seconds. */
export function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const comm = text.slice(open + 1, close);
  // Fields after ") ": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
  const f = text.slice(close + 2).split(' ');
  const n = (i: number) => Number(f[i - 3]);
  return { pid, comm, ppid: n(4), self: (n(14) + n(15)) / CLK_TCK, children: (n(16) + n(17)) / CLK_TCK };
}

/** Pids of the live direct children of `pid` (a cluster primary's workers, Postfix's daemons). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    if (procStat(Number(name))?.ppid === pid) out.push(Number(name));
  }
  return out;
}

/** Resident set size of a process in bytes (VmRSS), or 0 if it is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Scheduler statistics of one thread (/proc/<pid>/task/<tid>/schedstat): seconds on a CPU,
 * seconds runnable but waiting for a CPU, and timeslices. run + wait close to the elapsed
 * time means the thread always had work: it is the bottleneck.
 */
export function threadSched(pid: number, tid = pid): { run: number; wait: number; slices: number } | null {
  try {
    const [run = 0, wait = 0, slices = 0] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    return { run: run / 1e9, wait: wait / 1e9, slices };
  } catch {
    return null;
  }
}

/** Machine-wide CPU seconds from /proc/stat: busy (all but idle and iowait) and steal. */
export function machineCpu(): { busy: number; steal: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return { busy: (user + nice + system + irq + softirq) / CLK_TCK, steal: steal / CLK_TCK };
}

/**
 * CPU seconds of a process and its direct children, including children that have exited and
 * been reaped (they land in the parent's cutime/cstime). Postfix's master reaps its daemons, so
 * a before/after difference of this covers every Postfix process. Also returns a per-name
 * breakdown of the live processes; reaped ones are under "(exited)".
 */
export function treeCpu(rootPid: number): { total: number; byName: Map<string, number> } {
  const byName = new Map<string, number>();
  const root = procStat(rootPid);
  if (!root) return { total: NaN, byName };
  let total = root.self + root.children;
  byName.set(root.comm, root.self);
  byName.set('(exited)', root.children);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (!st || st.ppid !== rootPid) continue;
    const t = st.self + st.children;
    total += t;
    byName.set(st.comm, (byName.get(st.comm) ?? 0) + t);
  }
  return { total, byName };
}

// ---------------------------------------------------------------------------------------------
// smtp-sink with running counters

export interface Sink {
  port: number;
  pid: number;
  /** Messages ("." received) so far. */
  messages(): number;
  /** Resolves with performance.now() of the moment the counter reached n. */
  waitFor(n: number, timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts Postfix's smtp-sink with -c: it prints "sess=N quit=N mesg=N\r" every time a session
 * ends, a QUIT is executed or a "." is received, so the last "mesg=" is the count of messages the
 * sink has taken. It does not announce CHUNKING, so both MTAs use DATA towards it.
 */
export async function startSink(): Promise<Sink> {
  const port = await freePort();
  const args = [...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), '-c', '-m', '1000', `127.0.0.1:${port}`, '1000'];
  const proc = spawn('smtp-sink', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const unregister = onCleanup(() => killPid(proc.pid));
  let count = 0;
  let tail = '';
  let stderr = '';
  const waiters: Array<{ n: number; resolve: (t: number) => void }> = [];
  proc.stdout.setEncoding('latin1');
  proc.stdout.on('data', (chunk: string) => {
    const now = performance.now();
    const text = tail + chunk;
    const cut = Math.max(text.lastIndexOf('\r'), text.lastIndexOf('\n'));
    if (cut < 0) { tail = text; return; }
    tail = text.slice(cut + 1);
    const i = text.lastIndexOf('mesg=', cut);
    if (i < 0) return;
    const m = /^mesg=(\d+)/.exec(text.slice(i, cut));
    if (!m) return;
    count = Number(m[1]);
    for (let k = waiters.length - 1; k >= 0; k--) {
      if (count >= waiters[k]!.n) { waiters[k]!.resolve(now); waiters.splice(k, 1); }
    }
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => { stderr += d; });
  proc.once('exit', (code, sig) => {
    if (waiters.length) process.stderr.write(`smtp-sink exited (${code ?? sig}) while waited on: ${stderr}\n`);
  });
  try {
    await waitListening(port);
  } catch (err) {
    killPid(proc.pid);
    throw new Error(`smtp-sink did not start: ${(err as Error).message} ${stderr}`);
  }
  return {
    port,
    pid: proc.pid!,
    messages: () => count,
    waitFor: (n, timeoutMs) => {
      if (count >= n) return Promise.resolve(performance.now());
      return new Promise<number>((resolve, reject) => {
        const w = { n, resolve: (t: number) => { clearTimeout(timer); resolve(t); } };
        const timer = setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`sink on ${port}: ${count} of ${n} messages after ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    stop: async () => {
      killPid(proc.pid, 'SIGTERM');
      if (!(await waitExit(proc, 3000))) killPid(proc.pid);
      unregister();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// smtp-source

export interface SourceRun { messages: number; recipients: number; size: number; sessions: number; reuse: boolean }

/**
 * Runs smtp-source against port and resolves with its wall time in seconds. With -r N it sends N
 * RCPT TO per message, numbering all but one address (r@, 2r@ .. Nr@), all to one domain. It
 * exits non-zero on any unexpected reply (no -A), so a clean exit means every MAIL, RCPT and
 * end-of-data got its 2xx/3xx.
 */
export async function runSmtpSource(port: number, r: SourceRun, timeoutMs: number): Promise<number> {
  const args = [
    ...(r.reuse ? ['-d'] : []),
    '-s', String(r.sessions), '-m', String(r.messages), '-l', String(r.size), '-r', String(r.recipients),
    '-M', 'source.test', '-f', 'sender@source.test', '-t', 'r@sink.test', `127.0.0.1:${port}`,
  ];
  const t0 = performance.now();
  const proc = spawn('smtp-source', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const unregister = onCleanup(() => killPid(proc.pid));
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => { if (stderr.length < 4000) stderr += d; });
  const ok = await waitExit(proc, timeoutMs);
  unregister();
  if (!ok) {
    killPid(proc.pid);
    throw new Error(`smtp-source ${args.join(' ')} still running after ${timeoutMs} ms`);
  }
  const secs = (performance.now() - t0) / 1000;
  if (proc.exitCode !== 0) throw new Error(`smtp-source ${args.join(' ')} exited ${proc.exitCode ?? proc.signalCode}: ${stderr.trim()}`);
  return secs;
}
