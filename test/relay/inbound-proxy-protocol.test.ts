// PROXY protocol on the inbound listener, with raw v1 and v2 headers on the wire: a relay
// behind a load balancer must judge the real client, not the balancer. The balancer here
// is 127.0.0.2 (IPv4) or ::1 (IPv6), and it is itself on relayNetworks, so any decision
// made on its address instead of the client's would let a stranger relay.
//  - from the trusted balancer, v1 and v2, IPv4 and IPv6 clients: relayNetworks, the
//    per-IP connection rate and the Received header use the client's address;
//  - a PROXY header from a peer outside trustedNetworks (a client spoofing its address)
//    is refused with 421 4.7.0 and a log line, and nothing it claimed is believed;
//  - the trusted balancer must send a header: none, a broken one or a silent connection
//    are refused (421 4.5.0 / 4.4.2) with a log line; a LOCAL health check is served as
//    the balancer itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestInbound } from '../helpers/inbound.ts';
import type { TestInbound } from '../helpers/inbound.ts';
import { PROXY_V2_SIGNATURE } from '../../relay/inbound/proxy-protocol.ts';
import { connectWire } from '../peers/wire-client.ts';
import type { WireClient } from '../peers/wire-client.ts';

const LB4 = '127.0.0.2';
const STRANGER = '127.0.0.3';
const CLIENT4 = '192.0.2.10';
const CLIENT6 = '2001:db8:1::10';
const OUTSIDER4 = '203.0.113.5';
const OUTSIDER6 = '2001:db8:99::5';

function v1(src: string, dst: string, sport = 40000, dport = 25): Buffer {
  return Buffer.from(`PROXY ${src.includes(':') ? 'TCP6' : 'TCP4'} ${src} ${dst} ${sport} ${dport}\r\n`, 'latin1');
}
function v2(src: string, dst: string, sport = 40000, dport = 25, command = 0x21): Buffer {
  const six = src.includes(':');
  const addr = (a: string): Buffer => {
    if (!six) return Buffer.from(a.split('.').map(Number));
    const [head = '', tail = ''] = a.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    return Buffer.from(groups.map((g) => g.padStart(4, '0')).join(''), 'hex');
  };
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sport, 0);
  ports.writeUInt16BE(dport, 2);
  const body = Buffer.concat([addr(src), addr(dst), ports]);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length);
  return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([command, six ? 0x21 : 0x11]), len, body]);
}

async function start(over: Record<string, unknown> = {}): Promise<TestInbound> {
  return startTestInbound({
    host: '::', // dual stack: the balancer connects over IPv4 and IPv6
    relayNetworks: ['192.0.2.0/24', '2001:db8:1::/48', `${LB4}/32`, '::1/128'],
    proxyProtocol: { trustedNetworks: [`${LB4}/32`, '::1/128'], headerTimeout: 0.5 },
    connectionRatePerIp: 0.001,
    connectionBurstPerIp: 2,
    ...over,
  });
}

/** Connects as `from` to the listener (IPv4 or, from ::1, IPv6) and writes `header` first. */
async function connectVia(t: TestInbound, from: string, header?: Buffer): Promise<WireClient> {
  const c = await connectWire(t.port, from === '::1' ? '::1' : '127.0.0.1', { localAddress: from });
  if (header) c.write(header);
  return c;
}

async function sendOne(c: WireClient, rcpt = 'someone@example.org'): Promise<string[]> {
  const replies = [await c.readReply()];
  replies.push(await c.command('EHLO client.example'));
  replies.push(await c.command('MAIL FROM:<app@example.com>'));
  replies.push(await c.command(`RCPT TO:<${rcpt}>`));
  if (!replies.at(-1)!.startsWith('250')) return replies;
  replies.push(await c.command('DATA'));
  c.write('Subject: via the balancer\r\n\r\nhello\r\n.\r\n');
  replies.push(await c.readReply());
  return replies;
}

test('v1 and v2 headers, IPv4 and IPv6 clients: relayNetworks and the Received header see the client, not the balancer', async () => {
  const t = await start();
  try {
    const cases: [string, string, Buffer, string][] = [
      ['v1 TCP4 over IPv4', LB4, v1(CLIENT4, '10.0.0.1'), `[${CLIENT4}]`],
      ['v2 TCP4 over IPv4', LB4, v2(CLIENT4, '10.0.0.1'), `[${CLIENT4}]`],
      ['v1 TCP6 over IPv4', LB4, v1(CLIENT6, 'fd00::1'), `[IPv6:${CLIENT6}]`],
      ['v2 TCP6 over IPv4', LB4, v2(CLIENT6, 'fd00::1'), `[IPv6:${CLIENT6}]`],
      ['v1 TCP4 over IPv6', '::1', v1(CLIENT4, '10.0.0.1'), `[${CLIENT4}]`],
      ['v2 TCP6 over IPv6', '::1', v2(CLIENT6, 'fd00::1'), `[IPv6:${CLIENT6}]`],
    ];
    for (const [name, from, header, literal] of cases) {
      const before = t.sink.messages.length;
      const c = await connectVia(t, from, header);
      try {
        const r = await sendOne(c);
        assert.match(r[0]!, /^220 relay\.test ESMTP/, name);
        assert.equal(r[3], '250 2.1.5 Accepted', `${name}: the client is on relayNetworks`);
        assert.match(r.at(-1)!, /^250 2\.0\.0 Ok: queued as MEM/, name);
      } finally {
        c.destroy();
      }
      const m = t.sink.messages[before];
      assert.ok(m, name);
      const client = literal.replace(/^\[(IPv6:)?|\]$/g, '');
      assert.equal(m.envelope.clientAddress, client, name);
      const received = m.body.toString('latin1').split('\r\n')[0]!;
      assert.equal(received, `Received: from client.example (${literal})`, name);
    }
  } finally {
    await t.close();
  }
});

test('a client off relayNetworks behind the balancer may not relay, although the balancer itself may', async () => {
  const t = await start();
  try {
    for (const header of [v1(OUTSIDER4, '10.0.0.1'), v2(OUTSIDER6, 'fd00::1')]) {
      const c = await connectVia(t, LB4, header);
      try {
        const r = await sendOne(c);
        assert.equal(r[3], '554 5.7.1 Relay access denied');
      } finally {
        c.destroy();
      }
    }
    assert.equal(t.sink.messages.length, 0);
    // The balancer's own address, for contrast: it is on relayNetworks (a LOCAL health check is judged as the balancer).
    const c = await connectVia(t, LB4, v2(CLIENT4, '10.0.0.1', 1, 25, 0x20));
    try {
      const r = await sendOne(c);
      assert.equal(r[3], '250 2.1.5 Accepted');
    } finally {
      c.destroy();
    }
    assert.equal(t.sink.messages[0]?.envelope.clientAddress, LB4);
  } finally {
    await t.close();
  }
});

test('the per-IP connection rate counts each client behind the balancer on its own', async () => {
  const t = await start();
  const open: WireClient[] = [];
  try {
    // Burst 2 per client (outsiders are rate-limited; relayNetworks clients are exempt).
    for (let i = 0; i < 2; i++) {
      const c = await connectVia(t, LB4, v1(OUTSIDER4, '10.0.0.1', 40000 + i));
      open.push(c);
      assert.match(await c.readReply(), /^220 /);
    }
    const third = await connectVia(t, LB4, v1(OUTSIDER4, '10.0.0.1', 40002));
    open.push(third);
    assert.equal(await third.readReply(), '421 4.7.0 Too many new connections from your address, slow down');
    // Another client through the same balancer has its own bucket.
    const other = await connectVia(t, LB4, v2('203.0.113.6', '10.0.0.1'));
    open.push(other);
    assert.match(await other.readReply(), /^220 /);
    const limited = t.logs.filter((l) => l.reason === 'connection_rate');
    assert.equal(limited.length, 1);
    assert.equal(limited[0]?.client, OUTSIDER4);
    assert.equal(limited[0]?.peer, LB4);
  } finally {
    for (const c of open) c.destroy();
    await t.close();
  }
});

test('a PROXY header from a peer outside trustedNetworks is refused with 421 4.7.0 and a log line, v1 and v2', async () => {
  const t = await start();
  try {
    for (const [version, header] of [['v1', v1(CLIENT4, '10.0.0.1')], ['v2', v2(CLIENT4, '10.0.0.1')]] as const) {
      const c = await connectVia(t, STRANGER, header);
      try {
        // The stranger is greeted as itself (it is no balancer), then its header gets the refusal.
        assert.match(await c.readReply(), /^220 relay\.test ESMTP/, version);
        assert.equal(await c.readReply(), '421 4.7.0 PROXY protocol header not accepted from your address', version);
        await c.closed(5000);
      } finally {
        c.destroy();
      }
    }
    const refused = t.logs.filter((l) => l.reason === 'untrusted_source');
    assert.equal(refused.length, 2);
    assert.equal(refused[0]?.peer, STRANGER);
    assert.match(String(refused[0]?.msg), /PROXY header from a peer outside proxyProtocol\.trustedNetworks/);
    assert.equal((await t.metrics.inboundProxyRefusals.get()).values.find((v) => v.labels.reason === 'untrusted_source')?.value, 2);
    assert.equal(t.sink.messages.length, 0);
    assert.ok(!t.logs.some((l) => l.client === CLIENT4), 'nothing the stranger claimed was believed');
  } finally {
    await t.close();
  }
});

test('the trusted balancer must send a valid header: none, a broken one, or silence are refused with a log line', async () => {
  const t = await start();
  try {
    const cases: [string, Buffer | undefined, string, string][] = [
      ['SMTP instead of a header', Buffer.from('EHLO direct.example\r\n'), '421 4.5.0 PROXY protocol header missing or invalid', 'not_proxy'],
      ['a host name for the address', Buffer.from('PROXY TCP4 evil.example 10.0.0.1 1 25\r\n'), '421 4.5.0 PROXY protocol header missing or invalid', 'bad_address'],
      ['v2 over UDP', Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x12, 0, 12]), Buffer.alloc(12)]), '421 4.5.0 PROXY protocol header missing or invalid', 'unsupported_family'],
      ['nothing at all', undefined, '421 4.4.2 Timeout waiting for the PROXY protocol header', 'timeout'],
    ];
    for (const [name, header, reply, reason] of cases) {
      const c = await connectVia(t, LB4, header);
      try {
        assert.equal(await c.readReply(3000), reply, name);
        await c.closed(5000);
      } finally {
        c.destroy();
      }
      const line = t.logs.find((l) => l.reason === reason);
      assert.ok(line, `${name}: a log line with reason ${reason}`);
      assert.equal(line.peer, LB4);
      assert.match(String(line.msg), /trusted load balancer: no valid PROXY header/);
    }
    assert.equal(t.server.sessions(), 0);
  } finally {
    await t.close();
  }
});

test('without proxyProtocol a PROXY line is just an unknown command and changes nothing', async () => {
  const t = await startTestInbound({ relayNetworks: ['127.0.0.1/32'] });
  const c = await connectWire(t.port);
  try {
    assert.match(await c.readReply(), /^220 /);
    assert.match(await c.command(`PROXY TCP4 ${OUTSIDER4} 10.0.0.1 1 25`), /^500 /);
    await c.command('EHLO client.example');
    await c.command('MAIL FROM:<a@example.com>');
    assert.equal(await c.command('RCPT TO:<b@example.org>'), '250 2.1.5 Accepted');
  } finally {
    c.destroy();
    await t.close();
  }
});
