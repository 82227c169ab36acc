// Routing through a real DNS server on loopback: MX preference order, next MX on a connect
// failure or a 4xx greeting, implicit MX (A fallback), null MX and NXDOMAIN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startDnsServer } from '../peers/dns-server.ts';
import { startFaultServer } from '../peers/fault-server.ts';
import { startRawServer } from '../peers/raw-server.ts';
import { makeResolver } from '../../relay/outbound/mx.ts';
import { engineFor, message } from '../helpers/engine.ts';

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('MX in preference order; a refusing first MX and a 421 second MX fall through to the third', async (t) => {
  const good = await startFaultServer({});
  const busy = await startRawServer({ greeting: '421 4.3.2 busy, try later' });
  // All MX hosts share the port (one per domain in tests): we route by address instead.
  const dns = await startDnsServer([
    { name: 'example.com', type: 'MX', data: { preference: 10, exchange: 'mx1.example.com' } },
    { name: 'example.com', type: 'MX', data: { preference: 20, exchange: 'mx2.example.com' } },
    { name: 'example.com', type: 'MX', data: { preference: 30, exchange: 'mx3.example.com' } },
    { name: 'mx1.example.com', type: 'A', data: '127.0.0.2' }, // nothing listens there on that port
    { name: 'mx2.example.com', type: 'A', data: '127.0.0.3' },
    { name: 'mx3.example.com', type: 'A', data: '127.0.0.1' },
  ]);
  // mx2 must answer 421 on the same port as the good server: forward 127.0.0.3:port to the raw peer.
  const fwd = net.createServer((c) => { const u = net.connect(busy.port, '127.0.0.1'); c.pipe(u).pipe(c); c.on('error', () => u.destroy()); u.on('error', () => c.destroy()); });
  await new Promise<void>((r) => fwd.listen(good.port, '127.0.0.3', () => r()));
  const { engine } = engineFor(good.port, { mode: 'mx', mxPort: good.port, resolver: makeResolver([dns.server], 2000) });
  t.after(async () => { await engine.close(); await good.close(); await busy.close(); await dns.close(); fwd.close(); });

  const [r] = await engine.deliver(message('s@relay.test', ['user@example.com'], 'x\r\n'));
  assert.equal(r!.verdict.status, 'accepted');
  assert.equal(r!.host, 'mx3.example.com');
  assert.equal(busy.connections.length, 1, 'the 421 MX was tried');
  assert.deepEqual([...good.deliveries()], [['user@example.com', 1]]);
  assert.ok(dns.count('example.com', 'MX') >= 1);
});

test('no MX: implicit MX on the domain\'s A record (RFC 5321 §5.1)', async (t) => {
  const good = await startFaultServer({});
  const dns = await startDnsServer([{ name: 'plain.test', type: 'A', data: '127.0.0.1' }]);
  const { engine } = engineFor(good.port, { mode: 'mx', mxPort: good.port, resolver: makeResolver([dns.server], 2000) });
  t.after(async () => { await engine.close(); await good.close(); await dns.close(); });
  const [r] = await engine.deliver(message('s@relay.test', ['u@plain.test'], 'x\r\n'));
  assert.equal(r!.verdict.status, 'accepted');
});

test('null MX (RFC 7505) and NXDOMAIN fail permanently; DNS timeouts defer', async (t) => {
  const port = await closedPort();
  const dns = await startDnsServer([
    { name: 'nomail.test', type: 'MX', data: { preference: 0, exchange: '.' } },
    { name: 'slow.test', type: 'MX', data: { preference: 10, exchange: 'mx.slow.test' } },
  ], { faults: { 'slow.test': { mode: 'never' } } });
  const { engine } = engineFor(port, { mode: 'mx', mxPort: port, resolver: makeResolver([dns.server], 300) });
  t.after(async () => { await engine.close(); await dns.close(); });
  const r = await engine.deliver(message('s@relay.test', ['a@nomail.test', 'b@missing.test', 'c@slow.test'], 'x\r\n'));
  assert.deepEqual(r.map((x) => `${x.verdict.status}:${x.reply?.code ?? '-'}:${x.reply?.enhanced ? `${x.reply.enhanced.class}.${x.reply.enhanced.subject}.${x.reply.enhanced.detail}` : '-'}`),
    ['failed:556:5.1.10', 'failed:550:5.1.2', 'deferred:-:-']);
});
