// Fuzz property of the relay's inbound SMTP listener: raw sockets send random and mutated
// command lines, lock-step and pipelined, with message bodies full of dot-lines and bare
// line feeds. Every line gets a well-formed reply (4xx/5xx with an RFC 3463 enhanced code),
// the relay keeps serving, and every message it acknowledged with 250 reaches the peer
// (or comes back to its sender as a DSN).
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import nodemailer from 'nodemailer';
import { startFaultServer, type FaultServer } from '../peers/fault-server.ts';
import { startTestRelay } from '../helpers/relay.ts';
import { bytes } from './arbitraries.ts';
import type { FuzzTarget } from './harness.ts';

type Relay = Awaited<ReturnType<typeof startTestRelay>>;

/** A message the relay acknowledged, and the recipients it took for it. */
interface Acked {
  token: string;
  from: string;
  rcpts: string[];
}

/** Shared by all runs: the relay, its peer, and what was acknowledged. */
export interface InboundCtx {
  relay: Relay;
  peer: FaultServer;
  acked: Acked[];
  runs: number;
  replies: number;
}

/** What the client does next. */
type Step =
  | { kind: 'line'; text: string; eol: string }
  | { kind: 'pipelined'; lines: string[] }
  | { kind: 'message'; from: string; rcpts: string[]; body: string };

const ADDRESSES = ['a@example.com', 'b@example.org', '552-quota@example.net', 'tempfail-once-x@example.com', 'UPPER@Example.COM', 'm\u00fcller@example.de', 'x@[127.0.0.1]', 'postmaster'];
const address = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...ADDRESSES) },
  { weight: 1, arbitrary: fc.constantFrom('', 'no-at-sign', '@', 'a@', '@b', 'a b@c.d', '"quoted local"@example.com', 'a@b@c', 'x'.repeat(300) + '@example.com', 'a@' + 'd'.repeat(300) + '.com') },
);
const param = fc.constantFrom('', ' SIZE=100', ' SIZE=abc', ' SIZE=99999999999', ' BODY=8BITMIME', ' BODY=BINARYMIME', ' SMTPUTF8', ' RET=HDRS', ' RET=BOGUS', ' ENVID=x+2By', ' NOTIFY=SUCCESS,FAILURE', ' NOTIFY=NEVER,SUCCESS', ' ORCPT=rfc822;a@b', ' ORCPT=garbage', ' AUTH=<>', ' X=Y', ' =', '  ');

/** A command line (without its line ending): well-formed, mangled, or noise. */
const commandLine: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom('EHLO', 'HELO', 'ehlo', 'EhLo'), fc.constantFrom(' client.test', '', ' [127.0.0.1]', ' x'.repeat(40), ' \u00e9\u00e9')).map(([v, a]) => v + a) },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom('MAIL FROM:', 'mail from:', 'MAIL FROM: ', 'MAIL FROM', 'MAIL TO:'), address, fc.boolean(), param).map(([v, a, br, p]) => `${v}${br ? `<${a}>` : a}${p}`) },
  { weight: 5, arbitrary: fc.tuple(fc.constantFrom('RCPT TO:', 'rcpt to:', 'RCPT TO: ', 'RCPT FROM:'), address, fc.boolean(), param).map(([v, a, br, p]) => `${v}${br ? `<${a}>` : a}${p}`) },
  { weight: 2, arbitrary: fc.constantFrom('RSET', 'NOOP', 'NOOP hello', 'VRFY a@example.com', 'EXPN list', 'HELP', 'HELP MAIL', 'ETRN x', 'TURN', 'XCLIENT ADDR=1.2.3.4', 'XFORWARD NAME=x', 'WIZ', 'SHELL', 'STARTTLS', 'BDAT 10', 'BDAT x LAST', 'AUTH', 'AUTH CRAM-MD5', 'AUTH PLAIN AGEAYg==', 'DATA x', 'RSET x') },
  { weight: 1, arbitrary: fc.string({ maxLength: 60, unit: 'grapheme-ascii' }).map((s) => s.replace(/[\r\n]/g, '')) },
  { weight: 1, arbitrary: bytes(80).map((s) => s.replace(/[\r\n]/g, '')) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('NOOP ', 'MAIL FROM:<', 'RCPT TO:<', 'EHLO '), fc.integer({ min: 500, max: 5000 })).map(([v, n]) => v + 'x'.repeat(n)) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('MAIL FROM:<a@b>', 'RCPT TO:<a@example.com>', 'NOOP'), fc.constantFrom('\r', '\0', '\rRCPT TO:<evil@x>', '\x7f', '\u00ff')).map(([a, b]) => a + b) },
);

/** Message bodies: headers with a tracking token are added by the step; this is the rest. */
const bodyText = fc.array(fc.oneof(
  fc.constantFrom('.', '..', '.leading', 'plain line', '', ' ', '\u00e9\u00ff', 'x'.repeat(1200), '\n.\n', '\r.\r', '.\r\n.', 'QUIT', 'MAIL FROM:<smuggled@x>'),
  fc.string({ maxLength: 40, unit: 'grapheme-ascii' }),
), { maxLength: 12 }).map((ls) => ls.join('\r\n'));

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('line' as const), text: commandLine, eol: fc.constantFrom('\r\n', '\r\n', '\r\n', '\n') }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pipelined' as const), lines: fc.array(commandLine, { minLength: 2, maxLength: 8 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('message' as const), from: address, rcpts: fc.array(address, { minLength: 1, maxLength: 4 }), body: bodyText }) },
);

const REPLY_LINE = /^(\d{3})([ -])(.*)$/;
const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}(?: |$)/;

/** A line-oriented raw SMTP client that checks every reply line it reads. */
class RawClient {
  private buf = '';
  private closed = false;
  private waiter: (() => void) | null = null;
  /** Reply lines read, for failure messages. */
  readonly transcript: string[] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => { this.buf += c.toString('latin1'); this.wake(); });
    socket.on('close', () => { this.closed = true; this.wake(); });
    socket.on('error', () => undefined);
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  write(text: string): void {
    if (!this.closed) this.socket.write(Buffer.from(text, 'latin1'));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /**
   * Reads one complete reply within timeoutMs; null if the connection closed first. Checks
   * its format; `helo` marks a reply to HELO/EHLO, which RFC 2034 §3 exempts from enhanced codes.
   */
  async reply(timeoutMs: number, what: string, helo = false): Promise<{ code: number; lines: string[] } | null> {
    const deadline = Date.now() + timeoutMs;
    const lines: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const nl = this.buf.indexOf('\n');
      if (nl >= 0) {
        const line = this.buf.slice(0, nl).replace(/\r$/, '');
        this.buf = this.buf.slice(nl + 1);
        this.transcript.push(line);
        const m = REPLY_LINE.exec(line);
        assert.ok(m, `not a reply line after ${what}: ${JSON.stringify(line)}`);
        const code = Number(m[1]);
        if (code >= 400 && !helo) {
          assert.match(m[3]!, ENHANCED, `a ${code} reply without an RFC 3463 enhanced code after ${what}: ${JSON.stringify(line)}`);
          assert.equal(Number(m[3]![0]), Math.floor(code / 100), `enhanced code class differs from ${code} after ${what}`);
        }
        lines.push(line);
        if (m[2] === ' ') {
          assert.ok(lines.every((l) => l.startsWith(String(code))), `multi-line reply changed code after ${what}: ${JSON.stringify(lines)}`);
          return { code, lines };
        }
        continue;
      }
      if (this.closed) {
        assert.equal(this.buf, '', `connection closed in the middle of a reply line after ${what}: ${JSON.stringify(this.buf)}`);
        assert.equal(lines.length, 0, `connection closed in the middle of a multi-line reply after ${what}`);
        return null;
      }
      const left = deadline - Date.now();
      assert.ok(left > 0, `no reply within ${timeoutMs} ms after ${what} (read so far: ${JSON.stringify(this.buf.slice(0, 200))})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => { clearTimeout(t); resolve(); };
      });
    }
    throw new Error('reply: loop bound reached');
  }
}

const REPLY_TIMEOUT_MS = 5000;
const isHelo = (line: string) => /^(?:ehlo|helo)(?: |$)/i.test(line);

/** Runs one generated session against the relay; records what the relay acknowledged. */
async function runSession(ctx: InboundCtx, steps: readonly Step[]): Promise<void> {
  let c = await RawClient.connect(ctx.relay.smtpPort);
  try {
    assert.equal((await c.reply(REPLY_TIMEOUT_MS, 'connect'))?.code, 220);
    // A closed session is allowed only after a reply that says so (221 after QUIT, 421).
    const closedOk = (r: { code: number } | null, what: string): boolean => {
      if (r === null) {
        assert.ok(c.isClosed);
        return true;
      }
      ctx.replies++;
      if (r.code === 421 || r.code === 221) {
        assert.ok(true, what);
        return true;
      }
      return false;
    };
    const reconnect = async () => {
      c.destroy();
      c = await RawClient.connect(ctx.relay.smtpPort);
      assert.equal((await c.reply(REPLY_TIMEOUT_MS, 'reconnect'))?.code, 220);
    };
    let greeted = false;
    for (const st of steps) {
      if (c.isClosed) { await reconnect(); greeted = false; }
      if (st.kind === 'line') {
        c.write(st.text + st.eol);
        const what = `line ${JSON.stringify(st.text.slice(0, 100))}`;
        const r = await c.reply(REPLY_TIMEOUT_MS, what, isHelo(st.text));
        if (r === null) {
          // Only after QUIT may the server hang up without a reply line of its own.
          assert.ok(/^quit/i.test(st.text.trim()), `connection closed without a reply after ${what}`);
          continue;
        }
        if (closedOk(r, what)) continue;
        if (r.code === 354) {
          // DATA got through the fuzz: end it at once (an empty message, not tracked).
          c.write('.\r\n');
          const end = await c.reply(REPLY_TIMEOUT_MS, 'end of an untracked DATA');
          if (end) ctx.replies++;
        } else if (r.code === 334) {
          c.write('*\r\n'); // cancel the AUTH exchange (RFC 4954 §4)
          const end = await c.reply(REPLY_TIMEOUT_MS, 'AUTH cancel');
          if (end) ctx.replies++;
        }
        if (/^(?:ehlo|helo) /i.test(st.text) && r.code === 250) greeted = true;
      } else if (st.kind === 'pipelined') {
        // RFC 2920: one write; every line gets exactly one reply, in order.
        c.write(st.lines.map((l) => `${l}\r\n`).join(''));
        for (const [i, l] of st.lines.entries()) {
          const what = `pipelined line ${i} ${JSON.stringify(l.slice(0, 80))}`;
          const r = await c.reply(REPLY_TIMEOUT_MS, what, isHelo(l));
          assert.ok(r !== null || /^quit/i.test(l.trim()), `connection closed without a reply after ${what}`);
          if (r === null || closedOk(r, what)) break;
          // A pipelined DATA or AUTH that got through leaves the server waiting for more: leave it.
          if (r.code === 354 || r.code === 334) {
            c.destroy();
            break;
          }
        }
      } else {
        // A whole transaction; the message carries a token so the peer's copy can be found.
        if (!greeted) {
          c.write('EHLO fuzz.test\r\n');
          const r = await c.reply(REPLY_TIMEOUT_MS, 'EHLO', true);
          if (r === null || closedOk(r, 'EHLO')) continue;
          greeted = r.code === 250;
        }
        c.write(`MAIL FROM:<${st.from}>\r\n`);
        const mail = await c.reply(REPLY_TIMEOUT_MS, `MAIL FROM:<${st.from}>`);
        if (mail === null || closedOk(mail, 'MAIL')) continue;
        if (mail.code !== 250) continue;
        const taken: string[] = [];
        for (const rc of st.rcpts) {
          c.write(`RCPT TO:<${rc}>\r\n`);
          const r = await c.reply(REPLY_TIMEOUT_MS, `RCPT TO:<${rc}>`);
          if (r === null || closedOk(r, 'RCPT')) break;
          if (r.code === 250 || r.code === 251) taken.push(rc);
        }
        if (c.isClosed) continue;
        c.write('DATA\r\n');
        const data = await c.reply(REPLY_TIMEOUT_MS, 'DATA');
        if (data === null || closedOk(data, 'DATA')) continue;
        if (data.code !== 354) {
          c.write('RSET\r\n');
          const r = await c.reply(REPLY_TIMEOUT_MS, 'RSET');
          if (r) ctx.replies++;
          continue;
        }
        const token = `fuzz-${ctx.runs}-${Math.random().toString(36).slice(2, 10)}`;
        const message = `Subject: ${token}\r\nMessage-ID: <${token}@fuzz.test>\r\n\r\n${st.body}`;
        // Dot-stuff as a client must (RFC 5321 §4.5.2); the body's own bare LF/CR stay as they are.
        const stuffed = message.replace(/(^|\r\n)\./g, '$1..');
        c.write(`${stuffed}\r\n.\r\n`);
        const end = await c.reply(REPLY_TIMEOUT_MS, 'end of data');
        if (end === null || closedOk(end, 'end of data')) continue;
        if (end.code === 250) ctx.acked.push({ token, from: st.from, rcpts: taken });
      }
    }
    if (!c.isClosed) {
      c.write('QUIT\r\n');
      const r = await c.reply(REPLY_TIMEOUT_MS, 'QUIT');
      if (r) ctx.replies++;
    }
  } finally {
    c.destroy();
  }
}

/** The relay still serves a well-behaved client (nodemailer) after a fuzzed session. */
async function stillServes(ctx: InboundCtx): Promise<void> {
  const tr = nodemailer.createTransport({ host: '127.0.0.1', port: ctx.relay.smtpPort, ignoreTLS: true });
  try {
    const token = `good-${ctx.runs}`;
    const info = await tr.sendMail({ from: 'good@example.com', to: 'good@example.org', subject: token, text: 'still here' });
    assert.match(info.response, /^250 /);
    ctx.acked.push({ token, from: 'good@example.com', rcpts: ['good@example.org'] });
  } finally {
    tr.close();
  }
}

/** Every acknowledged recipient was delivered to the peer, or bounced back to a sender that can take a DSN. */
export async function assertNothingLost(ctx: InboundCtx, timeoutMs: number): Promise<{ delivered: number; bounced: number; nullSender: number; dsnRefused: number }> {
  const { peer, relay } = ctx;
  const lower = (s: string) => s.toLowerCase();
  const account = () => {
    const out = { delivered: 0, bounced: 0, nullSender: 0, dsnRefused: 0, missing: [] as string[] };
    for (const a of ctx.acked) {
      for (const r of a.rcpts) {
        const got = peer.transactions.some((tx) => tx.dataReply?.startsWith('250') && tx.rcptAccepted.some((x) => lower(x) === lower(r)) && tx.data?.includes(a.token));
        const dsn = peer.transactions.some((tx) => tx.from === '' && tx.dataReply?.startsWith('250') && tx.data?.includes(a.token));
        if (got) out.delivered++;
        else if (dsn) out.bounced++;
        else if (a.from === '' && relay.spool.size === 0) out.nullSender++; // RFC 5321 §4.5.5: no DSN to a null sender
        // The DSN went out but the peer refused its recipient (the sender): a bounce of a bounce is dropped.
        else if (peer.transactions.some((tx) => tx.from === '' && tx.rcptRejected.some((x) => lower(x.address) === lower(a.from)))) out.dsnRefused++;
        else out.missing.push(`${a.token} -> ${r} (from <${a.from}>)`);
      }
    }
    return out;
  };
  let last = account();
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000 && last.missing.length > 0 && Date.now() < deadline; i++) {
    await new Promise((r) => setTimeout(r, 50));
    last = account();
  }
  assert.deepEqual(last.missing, [], `acknowledged but neither delivered nor bounced (spool holds ${relay.spool.size})`);
  return { delivered: last.delivered, bounced: last.bounced, nullSender: last.nullSender, dsnRefused: last.dsnRefused };
}

/** Fuzzed sessions against a real relay inbound. */
export const inboundSessions: FuzzTarget<InboundCtx> = {
  name: 'inbound/sessions',
  ci: { numRuns: 60, timeMs: 12_000 },
  async setup() {
    const peer = await startFaultServer({});
    const relay = await startTestRelay(peer.port, { inbound: { maxRecipients: 50 }, delivery: { chunking: false }, log: { level: 'error' } });
    return { relay, peer, acked: [], runs: 0, replies: 0 };
  },
  async verify(ctx) {
    await stillServes(ctx);
    const n = await assertNothingLost(ctx, 20_000);
    return `${ctx.runs} sessions, ${ctx.replies} replies checked; ${ctx.acked.length} messages acknowledged: ${n.delivered} recipients delivered, ${n.bounced} bounced, ${n.dsnRefused} bounced to a sender the peer refused, ${n.nullSender} failed with a null sender`;
  },
  async teardown(ctx) {
    await ctx.relay.close();
    await ctx.peer.close();
  },
  property: (ctx) => fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 14 }), async (steps) => {
    ctx.runs++;
    await runSession(ctx, steps);
    if (ctx.runs % 10 === 1) await stillServes(ctx);
  }),
};

/** Every inbound target. */
export const inboundTargets: FuzzTarget<InboundCtx>[] = [inboundSessions];
