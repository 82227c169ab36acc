// The next hops of the interoperability matrix: real MTAs nobody on this project wrote,
// each a private instance on a loopback port, each configured the way people run them with
// a recipient limit of 10 and a mailbox `552-quota…@` that is over quota, and each storing
// what it received per recipient so the matrix can compare bytes:
//  - Postfix smtpd (Debian's postfix, a private instance, bench/relay-postfix.ts): delivers
//    through a pipe(8) transport that writes one file per queue id and recipient;
//  - Exim 4 (Debian's exim4-daemon-light, extracted by scripts/exim-extract.sh, never
//    installed: it conflicts with postfix): appendfile into one maildir per recipient;
//  - Haraka 3 from npm with haraka-plugin-limit, and a queue plugin that writes files;
//  - smtp-server written the way an application would (errors with a responseCode), with
//    ENHANCEDSTATUSCODES shown and hidden;
//  - our fault server (test/peers/fault-server.ts).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { startPostfix } from '../../bench/relay-postfix.ts';
import { freePort, waitListening } from '../../bench/relay-procs.ts';
import { startFaultServer } from '../peers/fault-server.ts';
import { installHaraka } from '../peers/haraka.ts';

/** One message as a next hop stored it for one recipient. */
export interface Stored {
  rcpt: string;
  bytes: Buffer;
}

/** A running next hop. */
export interface NextHop {
  /** Row name in docs/interop.md. */
  name: string;
  /** What is special about it (limit reply, options). */
  notes: string;
  port: number;
  /** Everything stored so far, one entry per recipient per delivery. */
  stored(): Stored[];
  close(): Promise<void>;
}

/** The recipient limit every next hop is configured with. */
export const LIMIT = 10;
/** Local parts starting with this are over quota at every next hop. */
export const QUOTA_PREFIX = '552-quota';

const uidGid = (user: string) => {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === user) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`no user ${user} in /etc/passwd`);
};

function readFlat(dir: string, rcptOf: (file: string) => string): Stored[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => !f.startsWith('.')).sort().map((f) => ({ rcpt: rcptOf(f), bytes: readFileSync(join(dir, f)) }));
}

/** Postfix smtpd with smtpd_recipient_limit 10, delivering every recipient to a file. */
export async function postfixHop(o: { pipelining: boolean; overshootLimit?: number }): Promise<NextHop> {
  const store = mkdtempSync(join(tmpdir(), 'interop-postfix-store-'));
  chmodSync(store, 0o777);
  const confDir = mkdtempSync(join(tmpdir(), 'interop-postfix-maps-'));
  chmodSync(confDir, 0o755);
  const quotaMap = join(confDir, 'quota.regexp');
  writeFileSync(quotaMap, `/^${QUOTA_PREFIX}/ 552 5.2.2 Mailbox full\n`);
  const pf = await startPostfix({
    concurrency: 1,
    hostname: 'postfix.interop.test',
    mainCf: [
      `smtpd_recipient_limit = ${LIMIT}`,
      ...(o.overshootLimit !== undefined ? [`smtpd_recipient_overshoot_limit = ${o.overshootLimit}`, 'smtpd_error_sleep_time = 0'] : []),
      ...(o.pipelining ? [] : ['smtpd_discard_ehlo_keywords = pipelining']),
      `smtpd_recipient_restrictions = check_recipient_access regexp:${quotaMap}, permit_mynetworks, reject`,
      'local_header_rewrite_clients =',
      'default_transport = fileout',
      'relay_transport = fileout',
      'fileout_destination_recipient_limit = 1',
    ],
    masterCf: [
      'fileout   unix  - n n - - pipe',
      `  flags= user=nobody argv=/bin/dd of=${store}/\${queue_id}.\${recipient} status=none`,
    ],
  });
  const notes = [
    `smtpd_recipient_limit ${LIMIT} (452 4.5.3)`,
    o.overshootLimit !== undefined ? `smtpd_recipient_overshoot_limit ${o.overshootLimit} (then 421, disconnect)` : '',
    o.pipelining ? 'PIPELINING' : 'no PIPELINING',
  ].filter(Boolean).join(', ');
  return {
    name: `Postfix ${postfixVersion()}${o.overshootLimit !== undefined ? ', overshoot' : ''}${o.pipelining ? '' : ', no PIPELINING'}`,
    notes,
    port: pf.smtpPort,
    stored: () => readFlat(store, (f) => f.slice(f.indexOf('.') + 1)),
    close: async () => {
      await pf.stop();
      rmSync(store, { recursive: true, force: true });
      rmSync(confDir, { recursive: true, force: true });
    },
  };
}

function postfixVersion(): string {
  try {
    return execFileSync('/usr/sbin/postconf', ['-dh', 'mail_version'], { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

/** Where scripts/exim-extract.sh puts Debian's exim4 binary (never apt-installed: it conflicts with postfix). */
export function eximBinary(): string {
  return process.env.EXIM_BIN ?? '/var/cache/mailrelay/exim4/usr/sbin/exim4';
}

/** Exim 4 with recipients_max 10 (452, or 552 + 554 to DATA with recipients_max_reject), appendfile maildirs. */
export async function eximHop(o: { reject: boolean }): Promise<NextHop> {
  const bin = eximBinary();
  if (!existsSync(bin)) throw new Error(`no exim at ${bin}: run scripts/exim-extract.sh (as .ci/run does)`);
  const base = mkdtempSync(join(tmpdir(), 'interop-exim-'));
  chmodSync(base, 0o755);
  const ex = uidGid('Debian-exim');
  for (const d of ['spool', 'log', 'store']) {
    mkdirSync(join(base, d));
    chownSync(join(base, d), ex.uid, ex.gid);
  }
  const port = await freePort();
  const conf = join(base, 'exim.conf');
  writeFileSync(conf, `primary_hostname = exim.interop.test
exim_path = ${bin}
spool_directory = ${base}/spool
log_file_path = ${base}/log/%slog
log_selector = +smtp_connection +received_recipients
exim_user = Debian-exim
exim_group = Debian-exim
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
keep_environment =
recipients_max = ${LIMIT}
recipients_max_reject = ${o.reject ? 'true' : 'false'}
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  deny local_parts = ^${QUOTA_PREFIX}
       message = 552 5.2.2 Mailbox full
  accept
begin routers
store:
  driver = accept
  transport = store_t
begin transports
store_t:
  driver = appendfile
  # One maildir for all: a path built from the recipient would be tainted (Exim 4.94+).
  directory = ${base}/store
  envelope_to_add
  maildir_format
  use_crlf
  create_directory
  user = Debian-exim
  group = Debian-exim
  mode = 0644
`);
  const proc = spawn(bin, ['-C', conf, '-bd', '-oX', `127.0.0.1:${port}`, '-oP', join(base, 'exim.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (b: Buffer) => { err += b.toString(); });
  try {
    await waitListening(port, 15_000);
  } catch (e) {
    proc.kill('SIGKILL');
    throw new Error(`exim did not listen on ${port}: ${(e as Error).message}\n${err}`);
  }
  const version = /Exim version (\S+)/.exec(execFileSync(bin, ['-C', conf, '-bV'], { encoding: 'utf8' }))?.[1] ?? '?';
  return {
    name: `Exim ${version}${o.reject ? ', recipients_max_reject' : ''}`,
    notes: o.reject ? `recipients_max ${LIMIT}, recipients_max_reject: 552 to the surplus, then 554 to DATA` : `recipients_max ${LIMIT}: 452 to the surplus`,
    port,
    // One file per recipient delivery; appendfile's Envelope-to: field names the recipient.
    stored: () => readFlat(join(base, 'store', 'new'), () => '').map((x) => ({
      ...x, rcpt: /^Envelope-to: (\S+)\r?$/m.exec(x.bytes.toString('latin1'))?.[1] ?? '?',
    })),
    close: async () => {
      await stopProc(proc);
      rmSync(base, { recursive: true, force: true });
    },
  };
}

async function stopProc(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

/** The Haraka queue plugin: over-quota refusals at RCPT, and one file per recipient at queue time. */
const HARAKA_PLUGIN = `
const fs = require('node:fs');
const path = require('node:path');
const { Writable } = require('node:stream');
const DSN = require('haraka-dsn');
exports.hook_rcpt = function (next, connection, params) {
  const rcpt = params[0];
  if (rcpt.user.toLowerCase().startsWith('${QUOTA_PREFIX}')) return next(DENY, DSN.mbox_full('Mailbox full', 552));
  next(OK);
};
exports.hook_queue = function (next, connection) {
  const txn = connection.transaction;
  const chunks = [];
  const sink = new Writable({ write(c, _e, cb) { chunks.push(Buffer.from(c)); cb(); } });
  sink.on('finish', () => {
    const data = Buffer.concat(chunks);
    for (const r of txn.rcpt_to) fs.writeFileSync(path.join(process.env.INTEROP_STORE, txn.uuid + '__' + r.user + '@' + r.host), data);
    next(OK);
  });
  // haraka-message-stream: dot_stuffed: true gives the message unstuffed (as for local delivery).
  txn.message_stream.pipe(sink, { dot_stuffed: true });
};
`;

/** Haraka 3 with haraka-plugin-limit ([recipients] max=10) and a file-writing queue plugin. */
export async function harakaHop(): Promise<NextHop> {
  const { bin } = await installHaraka(['haraka-plugin-limit']);
  const dir = mkdtempSync(join(tmpdir(), 'interop-haraka-'));
  const instance = join(dir, 'instance');
  const store = join(dir, 'store');
  mkdirSync(store);
  execFileSync(process.execPath, [bin, '-i', instance], { stdio: 'ignore' });
  const port = await freePort();
  writeFileSync(join(instance, 'config', 'smtp.ini'), `listen=127.0.0.1:${port}\nnodes=0\n`);
  writeFileSync(join(instance, 'config', 'plugins'), 'limit\ninterop_store\n');
  writeFileSync(join(instance, 'config', 'limit.ini'), `[main]\ntarpit_delay=0\n[recipients]\nenabled=true\nmax=${LIMIT}\n`);
  writeFileSync(join(instance, 'config', 'me'), 'haraka.interop.test\n');
  writeFileSync(join(instance, 'plugins', 'interop_store.js'), HARAKA_PLUGIN);
  const version = (JSON.parse(readFileSync(join(bin, '..', '..', 'Haraka', 'package.json'), 'utf8')) as { version: string }).version;
  const proc = spawn(process.execPath, [bin, '-c', instance], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, INTEROP_STORE: store } });
  let out = '';
  proc.stdout?.on('data', (b: Buffer) => { out += b.toString(); });
  proc.stderr?.on('data', (b: Buffer) => { out += b.toString(); });
  try {
    await waitListening(port, 30_000);
  } catch (e) {
    proc.kill('SIGKILL');
    throw new Error(`Haraka did not listen on ${port}: ${(e as Error).message}\n${out.slice(-3000)}`);
  }
  return {
    name: `Haraka ${version}`,
    notes: `haraka-plugin-limit [recipients] max=${LIMIT}: 450 to every RCPT past ${LIMIT} on the connection`,
    port,
    stored: () => readFlat(store, (f) => f.slice(f.indexOf('__') + 2)),
    close: async () => {
      await stopProc(proc);
      if (process.env.INTEROP_DEBUG) console.log(out);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * smtp-server as an application would write it: the limit and the quota are errors with a
 * responseCode, and smtp-server puts its own default enhanced code in front when
 * ENHANCEDSTATUSCODES is shown: `552 5.2.2 Too many recipients` (issue 10).
 */
export async function smtpServerHop(o: { enhanced: boolean; limitCode: 452 | 552; limitText: string }): Promise<NextHop> {
  const stored: Stored[] = [];
  const error = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });
  const server = new SMTPServer({
    name: 'smtp-server.interop.test',
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideENHANCEDSTATUSCODES: !o.enhanced,
    disableReverseLookup: true,
    logger: false,
    onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      if (session.envelope.rcptTo.length >= LIMIT) return cb(error(o.limitCode, o.limitText));
      if (address.address.toLowerCase().startsWith(QUOTA_PREFIX)) return cb(error(552, 'Mailbox full'));
      cb();
    },
    onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const bytes = Buffer.concat(chunks);
        for (const r of session.envelope.rcptTo) stored.push({ rcpt: r.address, bytes });
        cb();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as { port: number }).port;
  const wire = o.enhanced ? `${o.limitCode} ${o.limitCode === 552 ? '5.2.2' : '4.2.2'} ${o.limitText}` : `${o.limitCode} ${o.limitText}`;
  return {
    name: `smtp-server, enhanced codes ${o.enhanced ? 'on' : 'off'}${o.limitText.startsWith('5.5.3') || o.limitText.startsWith('4.5.3') ? `, "${o.limitText.slice(0, 5)}" text` : ''}${o.limitCode === 452 ? ', 452' : ''}`,
    notes: `limit reply on the wire: \`${wire}\``,
    port,
    stored: () => [...stored],
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Our fault server with a limit of 10 (452 4.5.3) and its address grammar (552-quota… is over quota). */
export async function faultHop(): Promise<NextHop> {
  const server = await startFaultServer({ maxRecipientsPerTransaction: LIMIT });
  return {
    name: 'fault server',
    notes: `maxRecipientsPerTransaction ${LIMIT}: \`452 4.5.3 Too many recipients\``,
    port: server.port,
    stored: () => server.transactions
      .filter((tx) => tx.data && tx.dataReply?.startsWith('250'))
      .flatMap((tx) => tx.rcptAccepted.map((rcpt) => ({ rcpt, bytes: tx.data! }))),
    close: () => server.close(),
  };
}

/** Waits until `port` accepts connections (re-exported for the matrix). */
export { waitListening };
