// A private Postfix instance for bench/relay.ts: its own config, queue and data directories in a
// temp dir, smtpd on a loopback port, relaying everything from 127.0.0.0/8 to [127.0.0.1]:sink.
// The system instance (/etc/postfix, /var/spool/postfix) is never started or written to.
// Postfix's cleanup fsyncs each queue file before smtpd replies 250 (mail_stream_finish_file),
// which is the durability our relay has with spool.fsync: true.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, childPids, freePort, killPid, onCleanup, procStat, setGroupNice, sleep, treeCpu, waitListening } from './relay-procs.ts';

export interface PostfixOptions {
  /** relayhost port on 127.0.0.1; without it Postfix delivers by its own transports (see mainCf/masterCf). */
  sinkPort?: number;
  /** main.cf lines appended after the defaults (a later line wins in main.cf). */
  mainCf?: string[];
  /** master.cf services appended after the defaults. */
  masterCf?: string[];
  /** Hostname in the greeting (default bench.test). */
  hostname?: string;
  /** smtp_destination_concurrency_limit: parallel connections to the sink. */
  concurrency: number;
  /** Keep the directory (logs, config) after stop. */
  keep?: boolean;
  /** Priority of the master's session's CPU share (Linux autogroup). */
  groupNice?: number;
}

export interface PostfixInstance {
  name: 'postfix';
  dir: string;
  /** main.cf and master.cf live here. */
  conf: string;
  /** The mail log (maillog_file). */
  maillog: string;
  smtpPort: number;
  masterPid: number;
  /** Settings that differ from Postfix's defaults (postconf -n), for the report. */
  settings: string[];
  cpu(): { total: number; byName: Map<string, number> };
  /** The master and its live daemons. */
  pids(): number[];
  /** "status=sent" lines in the mail log so far (one per delivered recipient). */
  sentRecipients(): number;
  /** Queue files in incoming, active, deferred and hold. */
  queued(): number;
  stop(): Promise<void>;
}

function uidGid(user: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === user) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`no user ${user} in /etc/passwd (is Debian's postfix package installed?)`);
}

function postfixCmd(conf: string, ...args: string[]): string {
  return execFileSync('/usr/sbin/postfix', ['-c', conf, ...args], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

function countFiles(dir: string): number {
  let n = 0;
  if (!existsSync(dir)) return 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  }
  return n;
}

export async function startPostfix(o: PostfixOptions): Promise<PostfixInstance> {
  if (process.getuid?.() !== 0) throw new Error('the Postfix side of the bench has to run as root (postfix start)');
  const base = mkdtempSync(join(tmpdir(), 'mailrelay-bench-postfix-'));
  const conf = join(base, 'conf');
  const queue = join(base, 'queue');
  const data = join(base, 'data');
  const maillog = join(base, 'maillog');
  chmodSync(base, 0o755); // mkdtemp makes it 0700; the postfix user must reach data/ and queue/
  for (const d of [conf, queue, data]) mkdirSync(d, { mode: 0o755 });
  const pf = uidGid('postfix');
  chownSync(data, pf.uid, pf.gid);
  const smtpPort = await freePort();

  const settings = [
    'compatibility_level = 3.6',
    `queue_directory = ${queue}`,
    `data_directory = ${data}`,
    'meta_directory = /etc/postfix',
    `myhostname = ${o.hostname ?? 'bench.test'}`,
    'mydomain = bench.test',
    'myorigin = $myhostname',
    'mydestination =',
    'local_transport = error:5.1.1 local delivery is disabled',
    'local_recipient_maps =',
    'alias_maps =',
    'alias_database =',
    'biff = no',
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    'mynetworks = 127.0.0.0/8',
    'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
    ...(o.sinkPort !== undefined ? [`relayhost = [127.0.0.1]:${o.sinkPort}`] : []),
    'smtp_tls_security_level = none',
    'smtpd_tls_security_level = none',
    'smtp_dns_support_level = disabled',
    'smtp_host_lookup = native',
    `smtp_destination_concurrency_limit = ${o.concurrency}`,
    'default_process_limit = 200',
    'smtpd_client_connection_count_limit = 0',
    'smtpd_client_connection_rate_limit = 0',
    'smtpd_client_message_rate_limit = 0',
    'smtpd_client_recipient_rate_limit = 0',
    `maillog_file = ${maillog}`,
    `maillog_file_prefixes = ${base}`,
    'import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C',
    ...(o.mainCf ?? []),
  ];
  writeFileSync(join(conf, 'main.cf'), settings.join('\n') + '\n');
  // Debian's master.cf services, minus local delivery and the pipe(8) examples, none chrooted
  // (the private queue has no chroot jail set up).
  const master = [
    `127.0.0.1:${smtpPort} inet n - n - - smtpd`,
    'pickup    unix  n - n 60    1 pickup',
    'cleanup   unix  n - n -     0 cleanup',
    'qmgr      unix  n - n 300   1 qmgr',
    'tlsmgr    unix  - - n 1000? 1 tlsmgr',
    'rewrite   unix  - - n -     - trivial-rewrite',
    'bounce    unix  - - n -     0 bounce',
    'defer     unix  - - n -     0 bounce',
    'trace     unix  - - n -     0 bounce',
    'verify    unix  - - n -     1 verify',
    'flush     unix  n - n 1000? 0 flush',
    'proxymap  unix  - - n -     - proxymap',
    'proxywrite unix - - n -     1 proxymap',
    'smtp      unix  - - n -     - smtp',
    'relay     unix  - - n -     - smtp',
    'showq     unix  n - n -     - showq',
    'error     unix  - - n -     - error',
    'retry     unix  - - n -     - error',
    'discard   unix  - - n -     - discard',
    'anvil     unix  - - n -     1 anvil',
    'scache    unix  - - n -     1 scache',
    'postlog   unix-dgram n - n - 1 postlogd',
    ...(o.masterCf ?? []),
  ];
  writeFileSync(join(conf, 'master.cf'), master.join('\n') + '\n');

  let masterPid = 0;
  const pidFile = join(queue, 'pid', 'master.pid');
  const abort = () => {
    try {
      postfixCmd(conf, 'abort');
    } catch {
      // not running
    }
    if (masterPid && alive(masterPid)) killPid(masterPid);
  };
  const unregister = onCleanup(() => {
    abort();
    if (!o.keep) rmSync(base, { recursive: true, force: true });
  });
  const fail = (what: string, err: unknown): never => {
    abort();
    const e = err as { stderr?: string; message?: string };
    const log = existsSync(maillog) ? readFileSync(maillog, 'utf8').split('\n').slice(-15).join('\n') : '';
    unregister();
    if (!o.keep) rmSync(base, { recursive: true, force: true });
    throw new Error(`postfix ${what} failed (${base}): ${e.stderr ?? e.message ?? String(err)}\n${log}`);
  };
  try {
    postfixCmd(conf, 'check'); // creates the queue subdirectories with the right owners
  } catch (err) {
    fail('check', err);
  }
  try {
    postfixCmd(conf, 'start');
  } catch (err) {
    fail('start', err);
  }
  for (let i = 0; i < 100 && !masterPid; i++) {
    if (existsSync(pidFile)) masterPid = Number(readFileSync(pidFile, 'utf8').trim()) || 0;
    if (!masterPid) await sleep(100);
  }
  if (!masterPid || procStat(masterPid)?.comm !== 'master') fail('start (no master.pid)', new Error(pidFile));
  // The master daemonized into a session of its own; give that session the bench's priority.
  if (o.groupNice !== undefined) setGroupNice(masterPid, o.groupNice);
  try {
    await waitListening(smtpPort);
  } catch (err) {
    fail('smtpd listen', err);
  }

  return {
    name: 'postfix',
    dir: base,
    conf,
    maillog,
    smtpPort,
    masterPid,
    settings,
    cpu: () => treeCpu(masterPid),
    pids: () => [masterPid, ...childPids(masterPid)],
    sentRecipients: () => {
      if (!existsSync(maillog) || statSync(maillog).size === 0) return 0;
      const text = readFileSync(maillog, 'latin1');
      let n = 0;
      for (let i = text.indexOf('status=sent'); i >= 0; i = text.indexOf('status=sent', i + 11)) n++;
      return n;
    },
    queued: () => ['incoming', 'active', 'deferred', 'hold', 'maildrop'].reduce((s, d) => s + countFiles(join(queue, d)), 0),
    stop: async () => {
      try {
        postfixCmd(conf, 'stop');
      } catch {
        // fall through to abort
      }
      for (let i = 0; i < 100 && alive(masterPid); i++) await sleep(100);
      if (alive(masterPid)) abort();
      unregister();
      if (!o.keep) rmSync(base, { recursive: true, force: true });
    },
  };
}
