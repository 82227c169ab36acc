// Draining (ADR 0003): the preStop drain delivers and stops; the operator's hold drain
// refuses new mail but keeps delivering without exiting, survives a restart, and can be
// undone. /drain from other hosts needs the drain token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startFaultServer } from '../peers/fault-server.ts';
import { startTestRelay, scrape } from '../helpers/relay.ts';
import { drainAllowed } from '../../relay/http.ts';

async function submit(port: number, to: string): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
  try {
    return (await t.sendMail({ from: 'a@relay.test', to, text: 'x' })).response;
  } catch (err) {
    return (err as { response?: string; message: string }).response ?? (err as Error).message;
  } finally {
    t.close();
  }
}

function request(port: number, method: string, path: string, localAddress?: string, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, localAddress, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

test('hold drain: 421 to new mail, queue still delivered, survives a restart, undone by DELETE', async (t) => {
  const peer = await startFaultServer({});
  const spool = mkdtempSync(join(tmpdir(), 'mailrelay-hold-'));
  let relay = await startTestRelay(peer.port, { spool: { dir: spool } });
  t.after(async () => { await relay.close(); await peer.close(); });

  assert.equal(await request(relay.httpPort, 'POST', '/drain?hold=true'), 202);
  assert.match(await submit(relay.smtpPort, 'b@example.com'), /^421/);
  assert.equal(await scrape(relay.httpPort, 'mailrelay_draining'), 1);
  assert.equal((await fetch(`http://127.0.0.1:${relay.httpPort}/readyz`)).status, 503);
  assert.equal((await fetch(`http://127.0.0.1:${relay.httpPort}/healthz`)).status, 200, 'still alive: it does not exit');

  // A restart on the same spool comes back still draining.
  await relay.close();
  relay = await startTestRelay(peer.port, { spool: { dir: spool } });
  assert.equal(await scrape(relay.httpPort, 'mailrelay_draining'), 1);
  assert.match(await submit(relay.smtpPort, 'c@example.com'), /^421/);

  assert.equal(await request(relay.httpPort, 'DELETE', '/drain'), 202);
  assert.match(await submit(relay.smtpPort, 'd@example.com'), /^250/);
  await peer.waitFor((p) => p.deliveries().has('d@example.com'), 10_000);
  assert.equal(await scrape(relay.httpPort, 'mailrelay_draining'), 0);
});

test('/drain from another host needs the token; loopback (preStop) does not', async (t) => {
  const peer = await startFaultServer({});
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-token-'));
  writeFileSync(join(dir, 'token'), 's3cr3t-token\n');
  const relay = await startTestRelay(peer.port, { http: { host: '0.0.0.0', drainTokenFile: join(dir, 'token') } });
  t.after(async () => { await relay.close(); await peer.close(); });
  assert.equal(drainAllowed('10.1.2.3', undefined, 's3cr3t-token'), false);
  assert.equal(drainAllowed('10.1.2.3', 'Bearer s3cr3t-token', 's3cr3t-token'), true);
  assert.equal(drainAllowed('10.1.2.3', 'Bearer wrong', 's3cr3t-token'), false);
  assert.equal(drainAllowed('10.1.2.3', 'Bearer x', undefined), false, 'no token configured: only loopback');
  assert.equal(drainAllowed('::ffff:127.0.0.1', undefined, undefined), true);
  // Over the wire (127.0.0.x is loopback, so the network check is what the unit test covers).
  assert.equal(await request(relay.httpPort, 'POST', '/drain?hold=true', undefined, undefined), 202);
  assert.equal(await request(relay.httpPort, 'DELETE', '/drain', undefined, 's3cr3t-token'), 202);
});
