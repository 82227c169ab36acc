// A client opening sessions faster than connectionRatePerIp (after its burst) gets
// 421 4.7.0 and is closed before it is counted as a session; other clients, and the
// relay's own networks, are not affected; the bucket refills with time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startTestInbound } from '../helpers/inbound.ts';
import { waitFor } from '../peers/wait.ts';

/** Connects from `localAddress` and resolves with the first reply line (the greeting or a refusal). */
function firstLine(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\r\n');
      if (nl >= 0) {
        socket.destroy();
        resolve(buf.slice(0, nl));
      }
    });
    socket.on('error', reject);
    socket.setTimeout(5000, () => {
      socket.destroy();
      reject(new Error('no first line'));
    });
  });
}

test('beyond its burst, a client IP gets 421 4.7.0 until its bucket refills; other IPs and relay networks are not limited', async () => {
  const t = await startTestInbound({ relayNetworks: ['127.0.0.1/32'], connectionRatePerIp: 2, connectionBurstPerIp: 3 });
  try {
    const lines: string[] = [];
    for (let i = 0; i < 4; i++) lines.push(await firstLine(t.port, '127.0.0.2'));
    assert.deepEqual(lines.map((l) => l.slice(0, 3)), ['220', '220', '220', '421']);
    assert.equal(lines[3], '421 4.7.0 Too many new connections from your address, slow down');
    assert.match(await firstLine(t.port, '127.0.0.3'), /^220 /, 'another IP has its own bucket');
    for (let i = 0; i < 10; i++) assert.match(await firstLine(t.port, '127.0.0.1'), /^220 /, 'relay networks are exempt');
    const limited = t.logs.filter((l) => l.reason === 'connection_rate');
    assert.equal(limited.length, 1);
    assert.equal(limited[0]?.client, '127.0.0.2');
    // 2 tokens a second: the bucket gives the next connection within ~0.5 s.
    let got = '';
    await waitFor(async () => {
      got = await firstLine(t.port, '127.0.0.2');
      return got.startsWith('220 ');
    }, 3000, 'a refilled token', 100);
    await waitFor(() => t.server.sessions() === 0, 2000, 'every session to close');
  } finally {
    await t.close();
  }
});
