// npm run bench:delivery — the delivery engine sending 4 KB messages to Postfix's smtp-sink
// on loopback, with PIPELINING on and off, and with CHUNKING (to a raw peer that offers it,
// since smtp-sink does not); plus smtp-source -> smtp-sink as the yardstick, side by side.
// Round trips per message are counted on the wire by a TCP proxy that counts how often
// the client starts sending again after the server has spoken.
//
// Usage: npx tsx bench/delivery.ts [--messages N] [--runs R] [--recipients K]
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { DeliveryEngine, type EngineOptions } from '../relay/outbound/engine.ts';
import { startRawServer } from '../test/peers/raw-server.ts';

const { values } = parseArgs({ options: { messages: { type: 'string' }, runs: { type: 'string' }, recipients: { type: 'string' } } });
const MESSAGES = Number(values.messages ?? 20000);
const RUNS = Number(values.runs ?? 3);
const RCPTS = Number(values.recipients ?? 1);
const BODY = Buffer.from(`Subject: bench\r\nFrom: a@bench.test\r\n\r\n${'x'.repeat(76)}\r\n`.repeat(52).slice(0, 4096));

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); r(true); });
      c.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listening on ${port}`);
}

async function startSink(pipelining: boolean): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const args = [...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), ...(pipelining ? [] : ['-p']), '-m', '1000', `127.0.0.1:${port}`, '1000'];
  const proc = spawn('smtp-sink', args, { stdio: 'ignore' });
  await waitListening(port);
  return { port, proc };
}

/** A proxy that counts client "turns": client bytes arriving after the server last spoke. */
async function countingProxy(target: number): Promise<{ port: number; turns: () => number; close: () => void }> {
  let turns = 0;
  const server = net.createServer((c) => {
    let serverSpoke = true; // the greeting comes first; the first client write is a turn
    const u = net.connect(target, '127.0.0.1');
    c.setNoDelay(true);
    u.setNoDelay(true);
    c.on('data', (d) => { if (serverSpoke) { turns++; serverSpoke = false; } u.write(d); });
    u.on('data', (d) => { serverSpoke = true; c.write(d); });
    c.on('close', () => u.destroy());
    u.on('close', () => c.destroy());
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as net.AddressInfo).port, turns: () => turns, close: () => server.close() };
}

function engine(port: number, o: Partial<EngineOptions>): DeliveryEngine {
  return new DeliveryEngine({
    mode: 'smarthost', smarthost: { host: '127.0.0.1', port, tls: 'none' }, mxPort: port, tls: 'none', tlsVerify: false,
    heloName: 'bench.test', pipelining: true, chunking: true, maxRecipientsPerTransaction: 100, concurrencyPerDestination: 8,
    maxMessagesPerConnection: 100000, destinations: {},
    timeouts: { connect: 5000, greeting: 5000, command: 5000, dataInit: 5000, dataBlock: 5000, dataTerm: 5000, idle: 5000 },
    overQuotaPolicy: 'bounce', ...o,
  });
}

async function send(e: DeliveryEngine, n: number, inflight = 64): Promise<number> {
  let next = 0;
  let failed = 0;
  const rcpts = Array.from({ length: RCPTS }, (_, i) => ({ address: `r${i}@sink.test` }));
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const res = await e.deliver({ id: `m${i}`, from: 'a@bench.test', recipients: rcpts, size: BODY.length, body: () => Readable.from([BODY]) });
      failed += res.filter((r) => r.verdict.status !== 'accepted').length;
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  return failed;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Row { name: string; msgsPerSec: number; rcptsPerSec: number; roundTrips: number | null; cpuSec: number }

async function measure(name: string, port: number, o: Partial<EngineOptions>): Promise<Row> {
  const rates: number[] = [];
  const cpus: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const e = engine(port, o);
    await send(e, 200); // warm up connections and JIT
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const failed = await send(e, MESSAGES);
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await e.close();
    if (failed > 0) throw new Error(`${name}: ${failed} recipients not accepted`);
    rates.push(MESSAGES / secs);
    cpus.push((cpu.user + cpu.system) / 1e6);
  }
  // Round trips: one connection, sequential messages, through the counting proxy.
  const proxy = await countingProxy(port);
  const e = engine(proxy.port, { ...o, concurrencyPerDestination: 1 });
  await send(e, 1, 1);
  const before = proxy.turns();
  const N = 200;
  await send(e, N, 1);
  const rt = (proxy.turns() - before) / N;
  await e.close();
  proxy.close();
  const m = median(rates);
  return { name, msgsPerSec: m, rcptsPerSec: m * RCPTS, roundTrips: rt, cpuSec: median(cpus) };
}

async function smtpSource(port: number): Promise<Row> {
  const rates: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const p = spawn('smtp-source', ['-s', '8', '-m', String(MESSAGES), '-l', '4096', '-r', String(RCPTS), '-f', 'a@bench.test', '-t', 'r@sink.test', `127.0.0.1:${port}`], { stdio: 'ignore' });
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`smtp-source exited ${code}`))));
    });
    rates.push(MESSAGES / ((performance.now() - t0) / 1000));
  }
  const m = median(rates);
  return { name: 'smtp-source (Postfix) -> smtp-sink, 8 sessions', msgsPerSec: m, rcptsPerSec: m * RCPTS, roundTrips: null, cpuSec: NaN };
}

async function main(): Promise<void> {
  const sinkP = await startSink(true);
  const sinkNoP = await startSink(false);
  const raw = await startRawServer({ capabilities: { chunking: true, pipelining: true } });
  const rows: Row[] = [];
  try {
    rows.push(await smtpSource(sinkP.port));
    rows.push(await measure('engine -> smtp-sink, PIPELINING', sinkP.port, { chunking: false }));
    rows.push(await measure('engine -> smtp-sink, no PIPELINING (lock-step)', sinkNoP.port, { chunking: false, pipelining: false }));
    rows.push(await measure('engine -> raw peer, CHUNKING + PIPELINING', raw.port, {}));
  } finally {
    sinkP.proc.kill();
    sinkNoP.proc.kill();
    await raw.close();
  }
  const base = rows[0]!.msgsPerSec;
  console.log(`\n${MESSAGES} messages x ${RCPTS} recipient(s) x ${BODY.length} bytes, median of ${RUNS} runs, node ${process.version}\n`);
  console.log('| workload | messages/s | recipients/s | round trips/message | engine CPU s | vs smtp-source |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.name} | ${r.msgsPerSec.toFixed(0)} | ${r.rcptsPerSec.toFixed(0)} | ${r.roundTrips === null ? '-' : r.roundTrips.toFixed(2)} | ${Number.isNaN(r.cpuSec) ? '-' : r.cpuSec.toFixed(2)} | ${(r.msgsPerSec / base).toFixed(2)}x |`);
  }
}

main().then(() => process.exit(0), (err: Error) => {
  console.error(err);
  process.exit(1);
});
