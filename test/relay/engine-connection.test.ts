// Connection-level behaviour of the engine against real smtp-server peers: a connection
// lost after the data, STARTTLS, AUTH, and pool reuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFaultServer } from '../peers/fault-server.ts';
import { makeTestCertificate } from '../peers/tls-cert.ts';
import { engineFor, message } from '../helpers/engine.ts';

test('a connection dropped after the data defers that transaction\'s accepted recipients; the retry delivers each once', async (t) => {
  const server = await startFaultServer({});
  const { engine } = engineFor(server.port, { chunking: false });
  t.after(async () => { await engine.close(); await server.close(); });
  const first = await engine.deliver(message('s@relay.test', ['drop-after-data-a@example.com', 'b@example.com', '550-nobody@example.com'], 'x\r\n'));
  assert.deepEqual(first.map((r) => `${r.verdict.status}${r.verdict.status === 'deferred' ? ':' + r.verdict.reason : ''}`), ['deferred:connection', 'deferred:connection', 'failed']);
  assert.equal(server.deliveries().size, 0, 'nothing was acknowledged, so nothing counts as delivered');
  // The scheduler retries only the deferred recipients.
  const retry = await engine.deliver(message('s@relay.test', ['b@example.com'], 'x\r\n'));
  assert.equal(retry[0]!.verdict.status, 'accepted');
  assert.deepEqual([...server.deliveries()], [['b@example.com', 1]]);
});

test('MAIL rejected: every recipient of the transaction gets the MAIL reply, not the 503s that follow', async (t) => {
  const server = await startFaultServer({});
  const { engine } = engineFor(server.port, { chunking: false });
  t.after(async () => { await engine.close(); await server.close(); });
  const r = await engine.deliver(message('mail-550-x@relay.test', ['a@example.com', 'b@example.com'], 'x\r\n'));
  assert.deepEqual(r.map((x) => `${x.verdict.status}:${x.reply?.code}`), ['failed:550', 'failed:550']);
  const t2 = await engine.deliver(message('mail-451-x@relay.test', ['a@example.com'], 'x\r\n'));
  assert.deepEqual(t2.map((x) => `${x.verdict.status}:${x.reply?.code}`), ['deferred:451']);
});

test('STARTTLS (required) and AUTH PLAIN to a smarthost; the message travels encrypted and authenticated', async (t) => {
  const cert = makeTestCertificate('localhost');
  const server = await startFaultServer({ tls: cert, auth: { username: 'relay', password: 's3cret' } });
  const { engine } = engineFor(server.port, {
    chunking: false,
    // The peer's self-signed certificate (SAN IP:127.0.0.1) is the trust anchor: verification is on.
    smarthost: { host: '127.0.0.1', port: server.port, tls: 'required', auth: { username: 'relay', password: 's3cret' }, ca: cert.cert },
  });
  t.after(async () => { await engine.close(); await server.close(); });
  const [r] = await engine.deliver(message('s@relay.test', ['a@example.com'], 'x\r\n'));
  assert.equal(r!.verdict.status, 'accepted');
  assert.equal(server.transactions[0]!.secure, true);
  assert.equal(server.transactions[0]!.auth, 'relay');
});

test('TLS required but not offered: deferred with reason tls, nothing sent in clear', async (t) => {
  const server = await startFaultServer({});
  const { engine } = engineFor(server.port, { smarthost: { host: '127.0.0.1', port: server.port, tls: 'required' } });
  t.after(async () => { await engine.close(); await server.close(); });
  const [r] = await engine.deliver(message('s@relay.test', ['a@example.com'], 'x\r\n'));
  assert.deepEqual(r!.verdict, { status: 'deferred', reason: 'tls', sameConnection: false });
  assert.equal(server.transactions.length, 0);
});

test('wrong AUTH credentials fail permanently with the server\'s reply', async (t) => {
  const cert = makeTestCertificate('localhost');
  const server = await startFaultServer({ tls: cert, auth: { username: 'relay', password: 'right' } });
  const { engine } = engineFor(server.port, {
    smarthost: { host: '127.0.0.1', port: server.port, tls: 'opportunistic', auth: { username: 'relay', password: 'wrong' }, ca: cert.cert },
  });
  t.after(async () => { await engine.close(); await server.close(); });
  const [r] = await engine.deliver(message('s@relay.test', ['a@example.com'], 'x\r\n'));
  assert.equal(r!.verdict.status, 'failed');
  assert.equal(r!.reply?.code, 535);
});

test('pooled connections are reused across messages, with a cap per destination', async (t) => {
  const server = await startFaultServer({});
  const { engine } = engineFor(server.port, { chunking: false, concurrencyPerDestination: 2 });
  t.after(async () => { await engine.close(); await server.close(); });
  const all = await Promise.all(Array.from({ length: 20 }, (_, i) => engine.deliver(message('s@relay.test', [`r${i}@example.com`], `m${i}\r\n`))));
  assert.ok(all.flat().every((r) => r.verdict.status === 'accepted'));
  assert.ok(server.connections.length <= 2, `used ${server.connections.length} connections`);
  assert.equal(server.deliveries().size, 20);
});

test('opportunistic STARTTLS whose handshake fails falls back to plaintext on the same host; "required" does not', async (t) => {
  const { startRawServer } = await import('../peers/raw-server.ts');
  // Offers STARTTLS and says 220, then answers the TLS ClientHello with plain text.
  const server = await startRawServer({
    capabilities: { starttls: true, chunking: false },
    handler: (cmd, ctx) => (cmd.verb === 'STARTTLS' ? '220 2.0.0 Ready to start TLS' : ctx.defaultReply()),
  });
  const { engine } = engineFor(server.port, { smarthost: { host: '127.0.0.1', port: server.port, tls: 'opportunistic' } });
  const strict = engineFor(server.port, { smarthost: { host: '127.0.0.1', port: server.port, tls: 'required' } }).engine;
  t.after(async () => { await engine.close(); await strict.close(); await server.close(); });
  const [r] = await engine.deliver(message('s@relay.test', ['a@example.com'], 'x\r\n'));
  assert.equal(r!.verdict.status, 'accepted');
  assert.equal(server.connections.length, 2, 'a failed TLS attempt, then a plaintext one');
  assert.ok(!server.connections[1]!.commands.some((c) => c.verb === 'STARTTLS'));
  const [s] = await strict.deliver(message('s@relay.test', ['b@example.com'], 'x\r\n'));
  assert.deepEqual(s!.verdict, { status: 'deferred', reason: 'tls', sameConnection: false });
  assert.equal(server.transactions.filter((tx) => tx.rcpts.some((x) => x.address === 'b@example.com')).length, 0, 'nothing sent in clear');
});
