// The Haraka installer gives a Haraka that really runs here: a private instance on a loopback
// port greets, answers EHLO, and stops on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HARAKA_VERSION, installHaraka } from './haraka.ts';
import { connectWire } from './wire-client.ts';
import { waitFor } from './wait.ts';

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

test(`Haraka ${HARAKA_VERSION} from npm runs as a loopback SMTP peer`, { timeout: 360_000 }, async () => {
  const { bin } = await installHaraka();
  const dir = mkdtempSync(join(tmpdir(), 'haraka-'));
  try {
    const instance = join(dir, 'instance');
    await new Promise<void>((resolve, reject) => {
      const p = spawn(process.execPath, [bin, '-i', instance], { stdio: 'ignore' });
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`haraka -i exited ${code}`))));
    });
    const port = await freePort();
    writeFileSync(join(instance, 'config', 'smtp.ini'), `listen=127.0.0.1:${port}\nnodes=0\n`);
    writeFileSync(join(instance, 'config', 'plugins'), '');
    writeFileSync(join(instance, 'config', 'me'), 'haraka.test\n');
    const proc = spawn(process.execPath, [bin, '-c', instance], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    proc.stderr.on('data', (b: Buffer) => { out += b.toString(); });
    try {
      await waitFor(async () => {
        try {
          const c = await connectWire(port);
          c.destroy();
          return true;
        } catch {
          return false;
        }
      }, 30_000, `Haraka listening on ${port}; output so far:\n${out}`, 100);
      const c = await connectWire(port);
      assert.match(await c.readReply(), /^220 haraka\.test /);
      const ehlo = await c.command('EHLO client.test');
      assert.match(ehlo, /^250-haraka\.test/);
      assert.match(ehlo, /PIPELINING/);
      assert.match(await c.command('QUIT'), /^221/);
      c.destroy();
    } finally {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
