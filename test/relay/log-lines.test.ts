// Conventional logs (issue 13 §3), read from a real relay process's stdout: every line is
// strict JSON (no key twice, which strict ingesters reject), a message is named by one key
// (`queueId`) from the moment it is accepted to its last delivery line, and each delivery
// line carries what Postfix's smtp lines carry: relay host[IP]:port, delay, DSN status,
// status word, reply, and the message's Message-ID.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import { startFaultServer, type FaultServer } from '../peers/fault-server.ts';
import { parseStrictJson } from '../helpers/strict-json.ts';

const CLI = fileURLToPath(new URL('../../bin/mailrelay.mjs', import.meta.url));
type Line = Record<string, unknown>;

describe('relay log lines', () => {
  let peer: FaultServer;
  let child: ChildProcess;
  let out = '';
  let queueId = '';
  const lines = (): Line[] => out.trim().split('\n').filter((l) => l !== '').map((l) => parseStrictJson(l) as Line);
  const waitFor = async (what: string, ok: (ls: Line[]) => boolean) => {
    const deadline = Date.now() + 30_000;
    while (!ok(out.trim() === '' ? [] : lines())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; log:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  before(async () => {
    peer = await startFaultServer({});
    const dir = mkdtempSync(join(tmpdir(), 'mailrelay-logs-'));
    const config = join(dir, 'relay.yaml');
    writeFileSync(config, stringify({
      inbound: { host: '127.0.0.1', port: 0, hostname: 'relay.test', relayNetworks: ['127.0.0.0/8'] },
      spool: { dir: join(dir, 'spool'), fsync: false },
      http: { host: '127.0.0.1', port: 0 },
      delivery: { mode: 'smarthost', smarthost: { host: '127.0.0.1', port: peer.port, tls: 'none' }, retry: { schedule: [3600], jitter: 0 } },
      log: { level: 'info' },
    }));
    child = spawn(process.execPath, [CLI, 'relay', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    await waitFor('relay started', (ls) => ls.some((l) => l.msg === 'relay started'));
    const smtp = lines().find((l) => l.msg === 'relay started')!.smtp as number;
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: smtp, ignoreTLS: true });
    const info = await t.sendMail({
      from: 'a@sender.test', to: ['ok@example.com', '451-later@example.com', '550-gone@example.com'], subject: 'logs', text: 'x',
      messageId: '<logs-1@client.test>',
    });
    t.close();
    queueId = /queued as (\S+)/.exec(info.response)![1]!;
    await waitFor('three delivery lines', (ls) => ls.filter((l) => l.msg === 'delivery outcome').length === 3);
  });
  after(async () => {
    child?.kill('SIGTERM');
    await new Promise((r) => child?.once('close', r));
    await peer?.close();
  });

  it('every line is strict JSON: no key twice (component included)', () => {
    for (const l of out.trim().split('\n')) assert.doesNotThrow(() => parseStrictJson(l), l);
    assert.ok(lines().every((l) => typeof l.component === 'string'), 'every line names its component');
  });

  it('one key names the message everywhere: queueId', () => {
    const mentioning = lines().filter((l) => JSON.stringify(l).includes(queueId));
    assert.ok(mentioning.length >= 4, JSON.stringify(mentioning));
    for (const l of mentioning) {
      // (The DSN line is about our message: the bounce's own id is dsnQueueId, as Postfix logs it.)
      assert.equal(l.queueId, queueId, `queueId in ${JSON.stringify(l)}`);
      assert.equal(l.id, undefined, `no "id" key in ${JSON.stringify(l)}`);
    }
    assert.ok(mentioning.some((l) => l.msg === 'message accepted' && l.component === 'inbound'));
  });

  it('delivery lines carry relay host[IP]:port, delay, DSN status, status, reply and Message-ID, like Postfix', () => {
    const d = lines().filter((l) => l.msg === 'delivery outcome');
    const by = (to: string) => d.find((l) => l.to === to)!;
    const relay = `127.0.0.1[127.0.0.1]:${peer.port}`;
    assert.deepEqual(
      { relay: by('ok@example.com').relay, dsn: by('ok@example.com').dsn, status: by('ok@example.com').status, messageId: by('ok@example.com').messageId },
      { relay, dsn: '2.0.0', status: 'sent', messageId: '<logs-1@client.test>' },
    );
    assert.match(String(by('ok@example.com').reply), /^250 /);
    assert.equal(by('451-later@example.com').status, 'deferred');
    assert.equal(by('451-later@example.com').dsn, '4.3.0');
    assert.equal(by('550-gone@example.com').status, 'bounced');
    assert.equal(by('550-gone@example.com').dsn, '5.1.1');
    for (const l of d) {
      assert.equal(typeof l.delay, 'number');
      assert.ok((l.delay as number) >= 0 && (l.delay as number) < 60, `delay in seconds: ${String(l.delay)}`);
      assert.equal(l.from, 'a@sender.test');
      assert.equal(l.component, 'delivery');
    }
  });
});
