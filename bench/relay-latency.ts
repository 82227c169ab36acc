// Submission latency for bench/relay.ts: an open-loop client that starts one message every
// 1/rate seconds, each on a connection of its own (as most application mailers send), and
// times it from connect() to the 250 after the final dot. Open loop: a slow reply does not
// slow the offered rate down, so queueing in the MTA shows in the latency. Lock-step
// commands (no PIPELINING), 1 recipient, `size` bytes of body. Loopback only; bounded in
// messages, in-flight sessions and time.
import net from 'node:net';

/** One run's figures. */
export interface LatencyResult {
  offeredPerSec: number;
  sent: number;
  ok: number;
  failed: number;
  /** Milliseconds, over the messages that got their 250. */
  p50: number;
  p99: number;
  max: number;
  /** Messages not started because `maxInFlight` sessions were already open (the MTA fell behind). */
  skipped: number;
}

/** Runs one message: connect, EHLO, MAIL, RCPT, DATA, body, dot, QUIT; resolves with ms from connect to the 250 after the dot. */
function oneMessage(port: number, body: string, n: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = net.connect({ port, host: '127.0.0.1' });
    s.setNoDelay(true);
    let buf = '';
    let step = 0;
    let done = false;
    const finish = (err?: Error, ms?: number): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        s.destroy();
        reject(err);
      } else {
        resolve(ms!);
      }
    };
    const timer = setTimeout(() => finish(new Error(`no reply within ${timeoutMs} ms at step ${step}`)), timeoutMs);
    const script = [
      'EHLO latency.bench.test',
      'MAIL FROM:<sender@source.test>',
      `RCPT TO:<l${n}@sink.test>`,
      'DATA',
      `${body}\r\n.`,
      'QUIT',
    ];
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        // A complete reply: its last line has a space after the code.
        const m = /^(?:\d{3}-[^\r\n]*\r\n)*(\d{3})(?: [^\r\n]*)?\r\n/.exec(buf);
        if (!m) return;
        buf = buf.slice(m[0].length);
        const code = Number(m[1]);
        const want = step === 0 ? 220 : step === 4 ? 354 : step === 6 ? 221 : 250;
        if (code !== want) return finish(new Error(`step ${step}: ${m[0].trim()}`));
        if (step === 5) {
          const ms = performance.now() - t0;
          s.write('QUIT\r\n');
          step++;
          s.end();
          return finish(undefined, ms);
        }
        s.write(`${script[step]!}\r\n`);
        step++;
      }
    });
    s.on('error', (e) => finish(e));
    s.on('close', () => {
      if (step < 6) finish(new Error(`closed at step ${step}`));
    });
  });
}

const pct = (sorted: number[], p: number): number => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! : NaN);

/** Offers `rate` messages/s for `seconds` to 127.0.0.1:port; resolves when every message has finished. */
export async function measureLatency(port: number, o: { rate: number; seconds: number; size: number; maxInFlight?: number; timeoutMs?: number }): Promise<LatencyResult> {
  const total = Math.max(1, Math.round(o.rate * o.seconds));
  const maxInFlight = o.maxInFlight ?? 200;
  const body = `Subject: latency\r\n\r\n${`${'x'.repeat(76)}\r\n`.repeat(Math.max(1, Math.round(o.size / 78)))}`;
  const times: number[] = [];
  let failed = 0;
  let skipped = 0;
  let inFlight = 0;
  const runs: Promise<void>[] = [];
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const at = t0 + (i * 1000) / o.rate;
    const wait = at - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    if (inFlight >= maxInFlight) {
      skipped++;
      continue;
    }
    inFlight++;
    runs.push(oneMessage(port, body, i, o.timeoutMs ?? 30_000).then(
      (ms) => {
        times.push(ms);
      },
      () => {
        failed++;
      },
    ).finally(() => {
      inFlight--;
    }));
  }
  await Promise.all(runs);
  const sorted = times.sort((a, b) => a - b);
  return { offeredPerSec: o.rate, sent: total, ok: sorted.length, failed, skipped, p50: pct(sorted, 0.5), p99: pct(sorted, 0.99), max: sorted.at(-1) ?? NaN };
}
