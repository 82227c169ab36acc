// `mailrelay queue` against a real relay (issue 13 §1): what `mailq`, `postqueue -f` and
// `postsuper -h/-H/-d` give a Postfix admin. The relay delivers to a fault-injecting peer
// whose "down.test" domain answers 451 until the test brings it back; the CLI runs as a
// child process talking to the relay's HTTP API; every change shows on the peer's wire.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import nodemailer from 'nodemailer';
import pino from 'pino';
import { startFaultServer, type FaultServer } from '../peers/fault-server.ts';
import { startTestRelay } from '../helpers/relay.ts';
import type { RelayHandle } from '../../relay/service.ts';
import { runCli, runCliInProcess, type CliRun } from '../helpers/cli.ts';

type Run = CliRun;

const cli = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> => runCli(args, { env, timeoutMs: 30_000 });

/** `mailrelay ARGS` in this process: the CLI's code without a Node start per call (the launcher runs for real in a few cases). */
const inProcess = runCliInProcess;

async function send(port: number, from: string, to: string[], subject: string): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
  try {
    const info = await t.sendMail({ from, to, subject, text: `body of ${subject}`, messageId: `<${subject}@client.test>` });
    const id = /queued as (\S+)/.exec(info.response)?.[1];
    assert.ok(id, info.response);
    return id;
  } finally {
    t.close();
  }
}

interface ListJson { messages: { id: string; state: string; from: string; destinations: string[]; recipients: { total: number; pending: number; delivered: number; deferred: number; failed: number } }[]; counts: Record<string, number>; truncated: boolean }
interface ShowJson { id: string; state: string; heldAt?: string; recipients: { address: string; state: string; lastReply?: string; reply?: string; nextAttemptAt?: string; attempts?: number }[] }

describe('mailrelay queue against a live relay', () => {
  const down = new Set(['down.test', 'down2.test']);
  const logLines: Record<string, unknown>[] = [];
  let peer: FaultServer;
  let relay: RelayHandle;
  let url: string;
  const q = async (...args: string[]): Promise<Run> => inProcess(['queue', ...args, '--url', url]);
  const json = async <T>(...args: string[]): Promise<T> => {
    const r = await q(...args, '--json');
    assert.equal(r.status, 0, `queue ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };
  const ids: Record<string, string> = {};

  before(async () => {
    peer = await startFaultServer({
      rcptReply: (address) => (down.has(address.slice(address.lastIndexOf('@') + 1)) ? '451 4.4.1 Destination is down, try later' : undefined),
    });
    const sink = new Writable({ write(chunk: Buffer, _e, cb) { for (const l of chunk.toString().split('\n')) if (l) logLines.push(JSON.parse(l) as Record<string, unknown>); cb(); } });
    // Retries an hour apart: nothing moves unless the queue commands move it.
    relay = await startTestRelay(peer.port, { delivery: { retry: { schedule: [3600], jitter: 0, maxAge: 86400 } }, log: { level: 'info' } }, { log: pino({ level: 'info' }, sink) });
    url = `http://127.0.0.1:${relay.httpPort}`;
    ids.a = await send(relay.smtpPort, 'alice@sender.test', ['x@down.test', 'y@up.test'], 'a');
    ids.b = await send(relay.smtpPort, 'bob@sender.test', ['z@down.test'], 'b');
    await peer.waitFor((p) => p.deliveries().get('y@up.test') === 1, 10_000);
    // Both messages deferred (x and z refused with 451).
    const deadline = Date.now() + 10_000;
    while (relay.spool.stats().byState.deferred < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(relay.spool.stats().byState.deferred, 2);
  });
  after(async () => {
    await relay?.close();
    await peer?.close();
  });

  it('list: a table like mailq, JSON, and filters by state, destination, sender and age', async () => {
    const table = await cli(['queue', 'list', '--url', url]);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /^ID\s+STATE\s+AGE\s+SIZE\s+RCPTS\s+FROM\s+NEXT\s+LAST REPLY$/m);
    assert.match(table.stdout, new RegExp(`^${ids.a}\\s+deferred\\s+\\S+\\s+\\S+\\s+1/2\\s+alice@sender\\.test\\s+in \\S+\\s+451 4\\.4\\.1 Destination is down`, 'm'));
    assert.match(table.stdout, /^-- 2 messages \(queued 0, deferred 2, held 0\)$/m);

    const all = await json<ListJson>('list');
    assert.deepEqual(all.messages.map((m) => m.id), [ids.a, ids.b]);
    assert.deepEqual(all.messages[0]!.destinations, ['down.test']);
    assert.deepEqual(all.messages[0]!.recipients, { total: 2, pending: 0, deferred: 1, delivered: 1, failed: 0 });
    assert.deepEqual((await json<ListJson>('list', '--sender', 'bob@sender.test')).messages.map((m) => m.id), [ids.b]);
    assert.deepEqual((await json<ListJson>('list', '--destination', 'down.test')).messages.map((m) => m.id), [ids.a, ids.b]);
    assert.deepEqual((await json<ListJson>('list', '--destination', 'up.test')).messages, [], 'delivered recipients are not pending for a destination');
    assert.deepEqual((await json<ListJson>('list', '--state', 'held')).messages, []);
    assert.deepEqual((await json<ListJson>('list', '--older-than', '1h')).messages, []);
    assert.equal((await json<ListJson>('list', '--older-than', '0s')).messages.length, 2);
  });

  it('show: envelope, each recipient\'s state, last reply and next attempt', async () => {
    const m = await json<ShowJson>('show', ids.a!);
    assert.equal(m.state, 'deferred');
    const x = m.recipients.find((r) => r.address === 'x@down.test')!;
    assert.equal(x.state, 'deferred');
    assert.equal(x.lastReply, '451 4.4.1 Destination is down, try later');
    assert.ok(Date.parse(x.nextAttemptAt!) > Date.now() + 3000 * 1000, 'next attempt an hour out');
    const y = m.recipients.find((r) => r.address === 'y@up.test')!;
    assert.equal(y.state, 'delivered');
    const text = await q('show', ids.a!);
    assert.match(text.stdout, /from\s+<alice@sender\.test>/);
    // The retry is exactly one hour out: "in 1h" when shown within the same second, else "in 59m…s".
    assert.match(text.stdout, /x@down\.test\s+deferred\s+attempts 1\s+next .*\(in (?:1h|59m(?:\d+s)?)\)\s+451 4\.4\.1 Destination is down/);
    const missing = await q('show', '01ARZ3NDEKTSV4RRFFQ69G5FAV');
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /01ARZ3NDEKTSV4RRFFQ69G5FAV: no such message in the queue/);
  });

  it('hold keeps a message out of delivery, retry --all flushes the rest, release and retry deliver it', async () => {
    const held = await q('hold', ids.b!);
    assert.equal(held.status, 0, held.stderr);
    assert.match(held.stdout, new RegExp(`${ids.b}: held`));
    assert.deepEqual((await json<ListJson>('list', '--state', 'held')).messages.map((m) => m.id), [ids.b]);

    down.delete('down.test');
    const flush = await q('retry', '--all');
    assert.equal(flush.status, 0, flush.stderr);
    assert.match(flush.stdout, new RegExp(`${ids.a}: retrying now`));
    assert.match(flush.stdout, new RegExp(`${ids.b}: skipped \\(held\\)`));
    await peer.waitFor((p) => p.deliveries().get('x@down.test') === 1, 10_000, 'x delivered after the flush');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(peer.deliveries().get('z@down.test'), undefined, 'the held message was not sent');

    assert.match((await q('release', ids.b!)).stdout, new RegExp(`${ids.b}: released`));
    assert.equal(peer.deliveries().get('z@down.test'), undefined, 'released, but its retry is still an hour out');
    const retry = await q('retry', '--destination', 'down.test');
    assert.match(retry.stdout, new RegExp(`${ids.b}: retrying now`));
    await peer.waitFor((p) => p.deliveries().get('z@down.test') === 1, 10_000, 'z delivered');
    await peer.waitFor(() => relay.spool.size === 0, 10_000, 'queue empty');
    assert.equal(peer.deliveries().get('x@down.test'), 1, 'nobody got a copy twice');
  });

  it('delete: silently, or with a bounce to the sender', async () => {
    const quiet = await send(relay.smtpPort, 'carol@sender.test', ['gone@down2.test'], 'quiet');
    const loud = await send(relay.smtpPort, 'dave@sender.test', ['v@down2.test', 'w@down2.test'], 'loud');
    await peer.waitFor(() => relay.spool.stats().byState.deferred === 2, 10_000, 'both deferred');
    const before = peer.transactions.length;
    assert.match((await q('delete', quiet)).stdout, new RegExp(`${quiet}: deleted`));
    assert.match((await q('delete', loud, '--dsn')).stdout, new RegExp(`${loud}: deleted, bounce sent`));
    await peer.waitFor((p) => p.deliveries().get('dave@sender.test') === 1, 10_000, 'the bounce reached dave');
    const bounce = peer.transactions.slice(before).find((t) => t.rcptAccepted.includes('dave@sender.test'))!;
    assert.equal(bounce.from, '', 'null reverse-path');
    const text = bounce.data!.toString();
    assert.match(text, /Action: failed/);
    assert.match(text, /Final-Recipient: rfc822; ?v@down2\.test/);
    assert.match(text, /Status: 5\.0\.0/);
    assert.match(text, /deleted from the queue by an administrator/);
    assert.equal(peer.deliveries().get('carol@sender.test'), undefined, 'a silent delete sends nothing');
    await peer.waitFor(() => relay.spool.size === 0, 10_000, 'queue empty');
  });

  it('every queue request is in the log: who, from where, what, and the outcome', () => {
    const audit = logLines.filter((l) => l.audit === true);
    const actions = audit.map((l) => l.action);
    for (const a of ['list', 'show', 'hold', 'retry', 'release', 'delete']) assert.ok(actions.includes(a), `${a} audited: ${JSON.stringify(actions)}`);
    const hold = audit.find((l) => l.action === 'hold')!;
    assert.equal(hold.remote, '127.0.0.1');
    assert.equal(hold.auth, 'loopback');
    assert.deepEqual(hold.queueIds, [ids.b]);
    assert.equal(hold.status, 200);
    assert.deepEqual(hold.results, { held: 1 });
  });
});

describe('queue API access control', () => {
  it('with trustLoopback off, the drain-token bearer is required, and refusals are audited', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailrelay-token-'));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 's3cr3t-token\n');
    const wrongFile = join(dir, 'wrong');
    writeFileSync(wrongFile, 'guess\n');
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({ write(chunk: Buffer, _e, cb) { for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>); cb(); } });
    const relay = await startTestRelay(1, { http: { drainTokenFile: tokenFile, trustLoopback: false } }, { log: pino({ level: 'info' }, sink) });
    try {
      const url = `http://127.0.0.1:${relay.httpPort}`;
      const none = await inProcess(['queue', 'list', '--url', url]);
      assert.equal(none.status, 1);
      assert.match(none.stderr, /answered 401: the queue API needs the drain token/);
      const wrong = await inProcess(['queue', 'list', '--url', url, '--token-file', wrongFile]);
      assert.equal(wrong.status, 1);
      assert.match(wrong.stderr, /answered 403/);
      const ok = await cli(['queue', 'list', '--url', url, '--token-file', tokenFile]);
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /-- 0 messages/);
      const viaEnv = await inProcess(['queue', 'list', '--url', url], { MAILRELAY_TOKEN_FILE: tokenFile });
      assert.equal(viaEnv.status, 0, viaEnv.stderr);
      const refused = lines.filter((l) => l.audit === true && (l.status === 403 || l.status === 401));
      assert.equal(refused.length, 2, JSON.stringify(lines));
      assert.ok(lines.some((l) => l.audit === true && l.auth === 'token' && l.status === 200));
      // /metrics and the probes stay open: Prometheus and the kubelet carry no token.
      assert.equal((await fetch(`${url}/metrics`)).status, 200);
      assert.equal((await fetch(`${url}/readyz`)).status, 200);
    } finally {
      await relay.close();
    }
  });
});
