// Fuzz property of a real SmtpConnection (relay/outbound/connection.ts) against a raw TCP
// server that answers each command, end of data and BDAT chunk from a random script:
// sane replies, random replies, mangled byte streams, replies dribbled out, delays past the
// timeouts, silence, truncation, endless lines, and closing or resetting the socket.
//
// The connection must end every time, within its timeouts, with every recipient classified
// (accepted, deferred or failed); and a recipient may be accepted only when the server
// really answered the end of the data with a 2xx.
import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { SessionFailure, SmtpConnection, type ConnectionOptions } from '../../relay/outbound/connection.ts';
import type { TransactionRequest, TransactionResult } from '../../relay/protocol/client-session.ts';
import { mutatedReplyStream, renderReply, replySpec } from './arbitraries.ts';
import type { FuzzTarget } from './harness.ts';

/** How the server answers one unit (command line, end of DATA, BDAT chunk). */
export type Response =
  | { kind: 'default' }
  | { kind: 'reply'; text: string }
  | { kind: 'raw'; text: string }
  | { kind: 'split'; chunk: number; intervalMs: number }
  | { kind: 'delay'; ms: number }
  | { kind: 'silent' }
  | { kind: 'close' }
  | { kind: 'destroy' }
  | { kind: 'truncated' }
  | { kind: 'huge'; len: number };

const response: fc.Arbitrary<Response> = fc.oneof(
  { weight: 24, arbitrary: fc.constant({ kind: 'default' as const }) },
  { weight: 3, arbitrary: replySpec.map((r) => ({ kind: 'reply' as const, text: renderReply(r) })) },
  { weight: 1, arbitrary: mutatedReplyStream.map((text) => ({ kind: 'raw' as const, text })) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('split' as const), chunk: fc.integer({ min: 1, max: 5 }), intervalMs: fc.integer({ min: 0, max: 20 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delay' as const), ms: fc.integer({ min: 0, max: 300 }) }) },
  { weight: 1, arbitrary: fc.constantFrom({ kind: 'silent' as const }, { kind: 'close' as const }, { kind: 'destroy' as const }, { kind: 'truncated' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('huge' as const), len: fc.integer({ min: 4000, max: 20_000 }) }) },
);

/** One unit the server read, and what it did about it. */
interface Unit {
  kind: 'greeting' | 'line' | 'data-end' | 'bdat';
  line: string;
  last: boolean;
  response: Response;
  /** What was written in answer (for data-end / BDAT LAST: the final-reply oracle). */
  written: string;
}

/** What the script server saw and did on its one connection. */
export interface ServerRecord {
  units: Unit[];
  closed: boolean;
}

/** The script server: one connection, each unit answered by the next response (then by closing). */
async function startScriptServer(caps: readonly string[], greeting: Response, responses: readonly Response[]) {
  const record: ServerRecord = { units: [], closed: false };
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const wait = (ms: number) => new Promise<void>((r) => { const t = setTimeout(() => { timers.delete(t); r(); }, ms); timers.add(t); });
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => { record.closed = true; });
    let buf = Buffer.alloc(0);
    let mode: 'cmd' | 'data' | { size: number; last: boolean; line: string } = 'cmd';
    let next = 0;
    let stopped = false;
    let busy = false;

    const defaultReply = (u: Unit): string => {
      if (u.kind === 'greeting') return '220 fuzz.test ESMTP\r\n';
      if (u.kind === 'data-end') return '250 2.0.0 queued\r\n';
      if (u.kind === 'bdat') return u.last ? '250 2.0.0 queued\r\n' : '250 2.0.0 chunk ok\r\n';
      const verb = u.line.split(' ')[0]!.toUpperCase();
      switch (verb) {
        case 'EHLO': return renderReply({ code: 250, lines: ['fuzz.test', ...caps] });
        case 'HELO': case 'MAIL': case 'RCPT': case 'RSET': case 'NOOP': return '250 2.0.0 ok\r\n';
        case 'DATA': return '354 go ahead\r\n';
        case 'QUIT': return '221 2.0.0 bye\r\n';
        default: return '500 5.5.2 what\r\n';
      }
    };

    const perform = async (u: Unit): Promise<void> => {
      record.units.push(u);
      const r = u.response;
      const text = defaultReply(u);
      const write = (s: string) => { if (!socket.destroyed) { socket.write(Buffer.from(s, 'latin1')); u.written += s; } };
      switch (r.kind) {
        case 'default': write(text); if (u.line.toUpperCase().startsWith('QUIT')) { stopped = true; socket.end(); } break;
        case 'reply': case 'raw': write(r.text); break;
        case 'split':
          for (let i = 0; i < text.length && !socket.destroyed; i += r.chunk) {
            write(text.slice(i, i + r.chunk));
            await wait(r.intervalMs);
          }
          break;
        case 'delay': await wait(r.ms); write(text); break;
        case 'silent': stopped = true; break;
        case 'close': stopped = true; socket.end(); break;
        case 'destroy': stopped = true; socket.destroy(); break;
        case 'truncated': write(text.slice(0, Math.max(1, text.length >> 1))); stopped = true; socket.end(); break;
        case 'huge': write(`250-${'x'.repeat(r.len)}`); break;
      }
      // A 354 (the final line's code) switches to reading the message, as a server does.
      if (u.kind === 'line' && /^DATA\b/i.test(u.line) && /(?:^|\n)354(?: [^\n]*)?\r?\n?$/.test(u.written)) mode = 'data';
    };

    const nextUnit = (): Unit | null => {
      const respond = (): Response => responses[next++] ?? { kind: 'close' };
      if (mode === 'cmd') {
        const nl = buf.indexOf(0x0a);
        if (nl < 0) return null;
        const line = buf.subarray(0, nl).toString('latin1').replace(/\r$/, '');
        buf = buf.subarray(nl + 1);
        const m = /^BDAT (\d+)( LAST)?$/i.exec(line);
        if (m) {
          mode = { size: Number(m[1]), last: m[2] !== undefined, line };
          return nextUnit();
        }
        return { kind: 'line', line, last: false, response: respond(), written: '' };
      }
      if (mode === 'data') {
        // The client's CRLF before DATA's end marker was consumed with the DATA line; look for it again.
        const i = Buffer.concat([Buffer.from('\r\n'), buf]).indexOf('\r\n.\r\n');
        if (i < 0) return null;
        buf = buf.subarray(i + 3);
        mode = 'cmd';
        return { kind: 'data-end', line: '.', last: true, response: respond(), written: '' };
      }
      if (buf.length < mode.size) return null;
      buf = buf.subarray(mode.size);
      const { last, line } = mode;
      mode = 'cmd';
      return { kind: 'bdat', line, last, response: respond(), written: '' };
    };

    const pump = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      try {
        for (let i = 0; i < 10_000 && !stopped && !socket.destroyed; i++) {
          const u = nextUnit();
          if (!u) break;
          await perform(u);
        }
      } finally {
        busy = false;
      }
      if (!stopped && !socket.destroyed && nextUnitAvailable()) void pump();
    };
    // Cheap re-check without consuming: more complete input arrived while we were busy.
    const nextUnitAvailable = () => (mode === 'cmd' ? buf.includes(0x0a) : mode === 'data' ? buf.includes('\r\n.\r\n') || buf.subarray(0, 3).equals(Buffer.from('.\r\n')) : buf.length >= mode.size);

    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (!stopped) void pump();
    });
    busy = true;
    void perform({ kind: 'greeting', line: '', last: false, response: greeting, written: '' }).finally(() => {
      busy = false;
      if (!stopped) void pump();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    record,
    close: () => new Promise<void>((resolve) => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

const outcomes = new Map<string, number>();
const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
/** How the runs so far ended (so a report shows the property is not vacuous: transactions do get accepted). */
export function connectionOutcomes(): ReadonlyMap<string, number> {
  return outcomes;
}

const TIMEOUT_MS = 200;
/** Upper bound for one run: greeting + EHLO + envelope + data + final reply + QUIT, each within its timeout, plus slack. */
const RUN_BOUND_MS = 20 * TIMEOUT_MS + 2000;

const body = fc.oneof(
  fc.constantFrom('Subject: x\r\n\r\nhello\r\n', 'Subject: dots\r\n\r\n.\r\n..\r\n.x\n\r.\r', ''),
  fc.integer({ min: 1, max: 200 }).map((n) => `Subject: big\r\n\r\n${'line of text\r\n'.repeat(n)}`),
);

/** One recipient's outcome checked against what the server did. */
function checkAcceptance(result: TransactionResult, rec: ServerRecord, wellBehaved: boolean): void {
  for (const x of result.recipients) {
    assert.ok(['accepted', 'deferred', 'failed'].includes(x.verdict.status), `unclassified: ${JSON.stringify(x.verdict)}`);
    if (x.verdict.status !== 'accepted') continue;
    const rep = x.reply;
    // Accepted only on a 2xx to the end of the data (relay/protocol/classify.ts classifyFailure).
    assert.ok(rep && rep.code >= 200 && rep.code < 300 && (rep.command === 'dot' || rep.command === 'bdat'),
      `${x.address} accepted on ${rep?.code} to ${rep?.command}; server units: ${rec.units.map((u) => u.line || u.kind).join(' | ')}`);
    // The server got the whole message: the end of DATA, or a BDAT LAST chunk.
    const ends = rec.units.filter((u) => u.kind === 'data-end' || (u.kind === 'bdat' && u.last));
    assert.ok(ends.length > 0, `${x.address} accepted but the server never received the end of the data`);
    if (wellBehaved) {
      // One reply per unit: the 2xx must be the server's answer to the end of the data.
      const ok = ends.some((u) => /^2\d\d(?:[ \r]|$)/.test(u.written.split('\n').filter(Boolean).at(-1) ?? ''));
      assert.ok(ok, `${x.address} accepted but the server answered the end of data with ${JSON.stringify(ends.map((u) => u.written))}`);
    }
  }
}

/** Fuzzed server scripts against a real SmtpConnection. */
export const connectionScripts: FuzzTarget = {
  name: 'smtp-connection/scripts',
  ci: { numRuns: 250, timeMs: 12_000 },
  property: () => fc.asyncProperty(
    fc.subarray(['PIPELINING', 'CHUNKING', '8BITMIME', 'SIZE 100000', 'ENHANCEDSTATUSCODES', 'DSN', 'SMTPUTF8']),
    response,
    fc.array(response, { minLength: 1, maxLength: 20 }),
    fc.record({ pipelining: fc.boolean(), chunking: fc.boolean(), chunkSize: fc.integer({ min: 16, max: 4096 }) }),
    fc.array(fc.constantFrom('a@example.com', 'b@example.org', 'c@example.net'), { minLength: 1, maxLength: 4 }),
    body,
    async (caps: string[], greeting: Response, responses: Response[], o: { pipelining: boolean; chunking: boolean; chunkSize: number }, rcpts: string[], text: string) => {
      const server = await startScriptServer(caps, greeting, responses);
      const started = Date.now();
      let conn: SmtpConnection | null = null;
      try {
        const opts: ConnectionOptions = {
          heloName: 'relay.test', tls: 'none', tlsVerify: 'record', pipelining: o.pipelining, chunking: o.chunking, overQuotaPolicy: 'bounce',
          chunkSize: o.chunkSize,
          timeouts: { connect: 1000, greeting: TIMEOUT_MS, command: TIMEOUT_MS, dataInit: TIMEOUT_MS, dataBlock: TIMEOUT_MS, dataTerm: TIMEOUT_MS },
        };
        const run = async (): Promise<void> => {
          try {
            conn = await SmtpConnection.open({ host: 'fuzz.test', address: '127.0.0.1', port: server.port }, opts);
          } catch (err) {
            assert.ok(err instanceof SessionFailure, `open failed with ${String(err)}`);
            assert.ok(err.verdict.status === 'deferred' || err.verdict.status === 'failed');
            count('session failed');
            return;
          }
          if (!conn.usable) { count('closed when ready'); return; } // e.g. unsolicited bytes after EHLO
          const req: TransactionRequest = { from: 's@relay.test', recipients: rcpts.map((address) => ({ address })), size: text.length };
          const result = await conn.send(req, () => Readable.from([Buffer.from(text, 'latin1')]));
          assert.deepEqual(result.recipients.map((r) => r.address), rcpts, 'one result per recipient, in order');
          const wellBehaved = ![greeting, ...responses].some((r) => r.kind === 'raw');
          checkAcceptance(result, server.record, wellBehaved);
          count(result.recipients.some((r) => r.verdict.status === 'accepted') ? 'accepted' : 'not accepted');
          if (conn.usable) await conn.quit();
        };
        let timer: NodeJS.Timeout | undefined;
        const hang = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`connection still busy after ${RUN_BOUND_MS} ms; server units: ${server.record.units.map((u) => `${u.line || u.kind}->${u.response.kind}`).join(' | ')}`)), RUN_BOUND_MS);
        });
        try {
          await Promise.race([run(), hang]);
        } finally {
          clearTimeout(timer);
        }
        assert.ok(Date.now() - started <= RUN_BOUND_MS);
      } finally {
        (conn as SmtpConnection | null)?.destroy();
        await server.close();
      }
    },
  ),
};

/** Every connection target. */
export const connectionTargets: FuzzTarget[] = [connectionScripts];
