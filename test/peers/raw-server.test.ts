// The raw server, driven by a plain socket: byte-exact capture, DATA and BDAT parsing,
// handler overrides and each hostile mode.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { hostile, startRawServer, unstuff } from './raw-server.ts';
import type { RawServer, RawServerOptions } from './raw-server.ts';
import { connectWire } from './wire-client.ts';
import type { WireClient } from './wire-client.ts';

const servers: RawServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function start(opts: RawServerOptions = {}): Promise<RawServer> {
  const s = await startRawServer(opts);
  servers.push(s);
  return s;
}

async function session(s: RawServer): Promise<{ c: WireClient; ehlo: string }> {
  const c = await connectWire(s.port);
  assert.equal(await c.readReply(), '220 raw-server.test ESMTP raw-server');
  const ehlo = await c.command('EHLO client.test');
  return { c, ehlo };
}

/** Writes `bytes` in pieces of `size` bytes, each in its own TCP write, yielding to the event loop in between. */
async function dribble(c: WireClient, bytes: Buffer, size: number): Promise<void> {
  for (let i = 0; i < bytes.length; i += size) {
    c.write(bytes.subarray(i, i + size));
    await new Promise((r) => setImmediate(r));
  }
}

describe('raw-server: default behaviour', () => {
  it('advertises the default capabilities, STARTTLS absent', async () => {
    const s = await start();
    const { ehlo } = await session(s);
    assert.equal(
      ehlo,
      ['250-raw-server.test', '250-PIPELINING', '250-SIZE 10485760', '250-8BITMIME', '250-SMTPUTF8', '250-ENHANCEDSTATUSCODES', '250-DSN', '250 CHUNKING'].join('\r\n'),
    );
  });

  it('capabilities are configurable, and enhanced codes follow ENHANCEDSTATUSCODES', async () => {
    const s = await start({ capabilities: { chunking: false, pipelining: false, size: false, enhancedStatusCodes: false, starttls: true, extra: ['AUTH PLAIN'] } });
    const { c, ehlo } = await session(s);
    assert.equal(ehlo, ['250-raw-server.test', '250-8BITMIME', '250-SMTPUTF8', '250-DSN', '250-STARTTLS', '250 AUTH PLAIN'].join('\r\n'));
    assert.equal(await c.command('MAIL FROM:<a@b.test>'), '250 Ok');
    assert.equal(await c.command('RCPT TO:<c@d.test>'), '250 Ok');
    c.write('BDAT 3 LAST\r\nabc');
    assert.equal(await c.readReply(), '502 Error: command not implemented', 'BDAT without CHUNKING: 502 after consuming the chunk');
    assert.equal(await c.command('NOOP'), '250 Ok', 'the chunk was not read as a command');
  });

  it('records DATA exactly as on the wire, still dot-stuffed, and an unstuffed view', async () => {
    const s = await start();
    const { c } = await session(s);
    assert.equal(await c.command('MAIL FROM:<a@b.test> BODY=8BITMIME'), '250 2.1.0 Ok');
    assert.equal(await c.command('RCPT TO:<c@d.test> NOTIFY=NEVER'), '250 2.1.5 Ok');
    assert.equal(await c.command('DATA'), '354 End data with <CR><LF>.<CR><LF>');
    const wire = Buffer.from('Subject: x\r\n\r\n..leading dot\r\n...two\r\nmid.dot\r\n.\r\n', 'latin1');
    await dribble(c, wire, 3);
    assert.match(await c.readReply(), /^250 2\.0\.0 Ok: queued as [0-9A-F]{10}$/);
    const tx = s.transactions[0];
    assert.ok(tx);
    assert.equal(tx.from, 'a@b.test');
    assert.equal(tx.mailParams, 'BODY=8BITMIME');
    assert.deepEqual(tx.rcpts.map((r) => [r.address, r.params, r.reply]), [['c@d.test', 'NOTIFY=NEVER', '250 2.1.5 Ok']]);
    assert.equal(tx.method, 'DATA');
    assert.deepEqual(tx.dataRaw, wire);
    assert.equal(tx.data?.toString('latin1'), 'Subject: x\r\n\r\n.leading dot\r\n..two\r\nmid.dot\r\n');
    assert.equal(tx.state, 'completed');
    const conn = s.connections[0];
    assert.ok(conn);
    assert.ok(conn.rawIn.toString('latin1').endsWith(wire.toString('latin1')), 'rawIn has every byte');
    assert.equal(conn.rawIn.toString('latin1'), 'EHLO client.test\r\nMAIL FROM:<a@b.test> BODY=8BITMIME\r\nRCPT TO:<c@d.test> NOTIFY=NEVER\r\nDATA\r\n' + wire.toString('latin1'));
    assert.equal(conn.rawOut.toString('latin1'), c.received().toString('latin1'), 'rawOut is what the client got');
  });

  it('finds the end of DATA wherever the TCP writes split it, and handles an empty message', async () => {
    const s = await start();
    const { c } = await session(s);
    for (const size of [1, 2, 4, 5]) {
      await c.command('MAIL FROM:<a@b.test>');
      await c.command('RCPT TO:<c@d.test>');
      await c.command('DATA');
      await dribble(c, Buffer.from(`x\r\n.y\r\n\r\n.\r\n`), size);
      assert.match(await c.readReply(), /^250 /);
    }
    await c.command('MAIL FROM:<a@b.test>');
    await c.command('RCPT TO:<c@d.test>');
    await c.command('DATA');
    await dribble(c, Buffer.from('.\r\n'), 1);
    assert.match(await c.readReply(), /^250 /);
    assert.deepEqual(s.transactions.map((t) => t.dataRaw?.toString()), [...Array<string>(4).fill('x\r\n.y\r\n\r\n.\r\n'), '.\r\n']);
    assert.deepEqual(s.transactions.map((t) => t.data?.toString()), [...Array<string>(4).fill('x\r\ny\r\n\r\n'), '']);
  });

  it('takes a large message in big writes, and a large BDAT chunk, without choking', async () => {
    const s = await start();
    const { c } = await session(s);
    const line = '.' + 'y'.repeat(998) + '\r\n';
    const body = Buffer.from(line.repeat(8 * 1024)); // 8 MiB, every line dot-stuffed
    await c.command('MAIL FROM:<a@b.test>');
    await c.command('RCPT TO:<c@d.test>');
    await c.command('DATA');
    c.write(body);
    c.write('.\r\n');
    assert.match(await c.readReply(30_000), /^250 /);
    assert.equal(s.transactions[0]?.dataRaw?.length, body.length + 3);
    assert.equal(s.transactions[0]?.data?.length, body.length - 8 * 1024);
    await c.command('MAIL FROM:<a@b.test>');
    await c.command('RCPT TO:<c@d.test>');
    c.write(`BDAT ${body.length} LAST\r\n`);
    c.write(body);
    assert.match(await c.readReply(30_000), /^250 /);
    assert.deepEqual(s.transactions[1]?.data, body);
  });

  it('default replies refuse out-of-order commands', async () => {
    const s = await start();
    const { c } = await session(s);
    assert.equal(await c.command('RCPT TO:<c@d.test>'), '503 5.5.1 Error: need MAIL command');
    assert.equal(await c.command('DATA'), '503 5.5.1 Error: need MAIL command');
    assert.equal(await c.command('MAIL FROM:<>'), '250 2.1.0 Ok');
    assert.equal(await c.command('MAIL FROM:<>'), '503 5.5.1 Error: nested MAIL command');
    assert.equal(await c.command('DATA'), '554 5.5.1 Error: no valid recipients');
    assert.equal(await c.command('FOO bar'), '500 5.5.2 Error: command not recognized');
    assert.equal(await c.command('STARTTLS'), '454 4.7.0 TLS not available');
    assert.equal(await c.command('RSET'), '250 2.0.0 Ok');
    assert.equal(s.transactions[0]?.state, 'reset');
    assert.equal(s.transactions[0]?.from, '');
    assert.equal(await c.command('QUIT'), '221 2.0.0 Bye');
    await c.closed();
    await s.waitFor((x) => x.connections[0]?.closed === true, 2000);
    assert.equal(s.connections[0]?.closedBy, 'server');
  });

  it('records bare-LF command lines as such', async () => {
    const s = await start();
    const c = await connectWire(s.port);
    await c.readReply();
    c.write('EHLO lf.test\nNOOP\r\n');
    await c.readReply();
    await c.readReply();
    assert.deepEqual(s.connections[0]?.commands.map((x) => [x.line, x.bareLf]), [['EHLO lf.test', true], ['NOOP', false]]);
  });

  it('marks a transaction aborted when the client drops mid-DATA', async () => {
    const s = await start();
    const { c } = await session(s);
    await c.command('MAIL FROM:<a@b.test>');
    await c.command('RCPT TO:<c@d.test>');
    await c.command('DATA');
    c.write('partial body\r\n');
    c.destroy();
    await s.waitFor((x) => x.transactions[0]?.state === 'aborted', 2000);
    assert.equal(s.transactions[0]?.dataRaw, undefined);
  });
});

describe('raw-server: pipelining evidence', () => {
  it('repliesBefore tells pipelined commands from lock-step ones', async () => {
    const s = await start();
    const { c } = await session(s);
    c.write('MAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nRCPT TO:<y@d.test>\r\nDATA\r\n');
    for (let i = 0; i < 4; i++) await c.readReply();
    c.write('z\r\n.\r\n');
    await c.readReply();
    await c.command('NOOP');
    const cmds = s.connections[0]?.commands ?? [];
    assert.deepEqual(cmds.map((x) => x.verb), ['EHLO', 'MAIL', 'RCPT', 'RCPT', 'DATA', '.', 'NOOP']);
    assert.deepEqual(cmds.map((x) => x.repliesBefore), [1, 2, 2, 2, 2, 6, 7]);
  });
});

describe('raw-server: BDAT', () => {
  it('reads exactly N bytes per chunk, whatever they contain, pipelined and split across writes', async () => {
    const s = await start();
    const { c } = await session(s);
    const chunk1 = Buffer.from('Subject: x\r\n\r\n.\r\nBDAT 99\r\nQUIT\r\n', 'latin1');
    const chunk2 = Buffer.from('\r\n.\r\n\x00\xff', 'latin1');
    const wire = Buffer.concat([
      Buffer.from(`MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT ${chunk1.length}\r\n`),
      chunk1,
      Buffer.from(`BDAT ${chunk2.length} LAST\r\n`),
      chunk2,
      Buffer.from('NOOP\r\n'),
    ]);
    await dribble(c, wire, 7);
    assert.equal(await c.readReply(), '250 2.1.0 Ok');
    assert.equal(await c.readReply(), '250 2.1.5 Ok');
    assert.equal(await c.readReply(), `250 2.0.0 Ok: ${chunk1.length} octets received`);
    assert.match(await c.readReply(), /^250 2\.0\.0 Ok: queued as /);
    assert.equal(await c.readReply(), '250 2.0.0 Ok');
    const tx = s.transactions[0];
    assert.ok(tx);
    assert.equal(tx.method, 'BDAT');
    assert.deepEqual(tx.chunks.map((k) => [k.size, k.last, k.bytes.toString('latin1')]), [
      [chunk1.length, false, chunk1.toString('latin1')],
      [chunk2.length, true, chunk2.toString('latin1')],
    ]);
    assert.deepEqual(tx.data, Buffer.concat([chunk1, chunk2]));
    assert.equal(tx.dataRaw, undefined);
    assert.equal(tx.state, 'completed');
    assert.deepEqual(s.connections[0]?.commands.map((x) => x.verb), ['EHLO', 'MAIL', 'RCPT', 'BDAT', 'BDAT', 'NOOP']);
  });

  it('BDAT 0 LAST ends a transaction; a chunk outside a transaction is consumed and refused', async () => {
    const s = await start();
    const { c } = await session(s);
    c.write('BDAT 4\r\nRSET');
    assert.equal(await c.readReply(), '503 5.5.1 Error: need MAIL command');
    assert.equal(s.connections[0]?.strayChunks[0]?.bytes.toString(), 'RSET');
    await c.command('MAIL FROM:<a@b.test>');
    await c.command('RCPT TO:<c@d.test>');
    c.write('BDAT 2\r\nhiBDAT 0 LAST\r\n');
    assert.match(await c.readReply(), /^250 /);
    assert.match(await c.readReply(), /^250 2\.0\.0 Ok: queued/);
    assert.equal(s.transactions[0]?.data?.toString(), 'hi');
    assert.deepEqual(s.transactions[0]?.chunks.map((k) => k.size), [2, 0]);
  });

  it('a malformed BDAT gets 501 and the connection is closed (its length is unknown)', async () => {
    const s = await start();
    const { c } = await session(s);
    assert.equal(await c.command('BDAT lots'), '501 5.5.4 Error: BDAT syntax');
    await c.closed();
  });
});

describe('raw-server: handler', () => {
  it('overrides only what it returns, sees the transaction, and can delay', async () => {
    const s = await start({
      handler: (cmd, ctx) => {
        if (cmd.verb === 'RCPT' && (ctx.transaction?.rcpts.length ?? 0) >= 2) return '452 4.5.3 Too many recipients';
        if (cmd.verb === 'RCPT' && cmd.args.includes('slow@')) return { reply: '250 2.1.5 slow ok', delay: 200 };
        if (cmd.verb === '.') {
          const body = ctx.transaction?.data?.toString() ?? '';
          return body.includes('spam') ? '554 5.6.0 Content rejected' : undefined;
        }
        return undefined;
      },
    });
    const { c } = await session(s);
    await c.command('MAIL FROM:<a@b.test>');
    const t0 = Date.now();
    assert.equal(await c.command('RCPT TO:<slow@d.test>'), '250 2.1.5 slow ok');
    assert.ok(Date.now() - t0 >= 190);
    assert.equal(await c.command('RCPT TO:<two@d.test>'), '250 2.1.5 Ok');
    assert.equal(await c.command('RCPT TO:<three@d.test>'), '452 4.5.3 Too many recipients');
    await c.command('DATA');
    c.write('this is spam\r\n.\r\n');
    assert.equal(await c.readReply(), '554 5.6.0 Content rejected');
    const tx = s.transactions[0];
    assert.ok(tx);
    assert.deepEqual(tx.rcpts.map((r) => r.reply), ['250 2.1.5 slow ok', '250 2.1.5 Ok', '452 4.5.3 Too many recipients']);
    assert.equal(tx.dataReply, '554 5.6.0 Content rejected');
  });

  it('a multi-line 354 still starts the message', async () => {
    const s = await start({ handler: (cmd) => (cmd.verb === 'DATA' ? hostile.multiline354() : undefined) });
    const { c } = await session(s);
    await c.command('MAIL FROM:<a@b.test>');
    await c.command('RCPT TO:<c@d.test>');
    assert.equal(await c.command('DATA'), '354-Go ahead\r\n354-Really, go ahead\r\n354 End data with <CR><LF>.<CR><LF>');
    c.write('body\r\n.\r\n');
    assert.match(await c.readReply(), /^250 /);
    assert.equal(s.transactions[0]?.data?.toString(), 'body\r\n');
  });
});

describe('raw-server: hostile modes', () => {
  it('garbage: sends text that is not a reply', async () => {
    const s = await start({ greeting: hostile.garbage() });
    const c = await connectWire(s.port);
    assert.deepEqual(await c.readBytes(13), Buffer.from('hello there\r\n'));
  });

  it('endless line: streams bytes without CRLF until the client gives up', async () => {
    const s = await start({ handler: (cmd) => (cmd.verb === 'EHLO' ? hostile.endlessLine({ durationMs: 5000 }) : undefined) });
    const c = await connectWire(s.port);
    await c.readReply();
    c.send('EHLO c.test');
    await c.readBytes(200_000, 5000);
    assert.doesNotMatch(c.received().toString('latin1').slice(40), /\n/);
    c.destroy();
    await s.waitFor((x) => x.connections[0]?.closed === true, 2000, 'server noticed the close');
    assert.equal(s.connections[0]?.closedBy, 'client');
  });

  it('endless line is bounded: the server drops the connection after durationMs', async () => {
    const s = await start({ greeting: hostile.endlessLine({ durationMs: 200 }) });
    const c = await connectWire(s.port);
    await c.closed(3000);
    assert.ok(c.received().length > 4);
    assert.equal(s.connections[0]?.closedBy, 'server');
  });

  it('never answer: no reply ever comes, input is still recorded', async () => {
    const s = await start({ handler: (cmd) => (cmd.verb === 'MAIL' ? hostile.neverAnswer() : undefined) });
    const { c } = await session(s);
    const before = c.received().length;
    c.send('MAIL FROM:<a@b.test>');
    await assert.rejects(c.readReply(300), /no reply within 300 ms/);
    c.send('RCPT TO:<c@d.test>');
    await s.waitFor((x) => (x.connections[0]?.rawIn.toString() ?? '').endsWith('RCPT TO:<c@d.test>\r\n'), 2000);
    assert.equal(c.received().length, before);
    assert.equal(c.isClosed(), false);
  });

  it('disconnect mid multi-line reply', async () => {
    const s = await start({ handler: (cmd) => (cmd.verb === 'EHLO' ? hostile.disconnectMidReply() : undefined) });
    const c = await connectWire(s.port);
    await c.readReply();
    c.send('EHLO c.test');
    await c.closed();
    assert.ok(c.received().toString('latin1').endsWith('250-raw-server.test\r\n250-PIPE'));
  });

  it('bare-LF replies', async () => {
    const s = await start({ handler: (cmd) => (cmd.verb === 'EHLO' ? hostile.bareLf(['250-raw.test', '250 PIPELINING']) : undefined) });
    const c = await connectWire(s.port);
    await c.readReply();
    c.send('EHLO c.test');
    assert.deepEqual(await c.readBytes(28), Buffer.from('250-raw.test\n250 PIPELINING\n'));
  });

  it('a reply split across many tiny TCP writes', async () => {
    const s = await start({ greeting: hostile.tinyWrites('220 tiny.test ESMTP split into pieces', 1, 3) });
    const socket = net.connect({ port: s.port, host: '127.0.0.1' });
    const pieces: Buffer[] = [];
    socket.on('data', (b: Buffer) => pieces.push(b));
    await s.waitFor(() => Buffer.concat(pieces).toString().endsWith('\r\n'), 5000, 'whole greeting');
    socket.destroy();
    assert.equal(Buffer.concat(pieces).toString(), '220 tiny.test ESMTP split into pieces\r\n');
    assert.ok(pieces.length > 5, `arrived in ${pieces.length} reads`);
  });

  it('an overlong command line gets 500 and the connection is closed', async () => {
    const s = await start({ maxLineLength: 1000 });
    const { c } = await session(s);
    c.write('x'.repeat(2000));
    assert.equal(await c.readReply(), '500 5.5.2 Error: line too long');
    await c.closed();
    assert.equal(s.connections[0]?.overlongLine, true);
  });
});

describe('raw-server: unstuff', () => {
  it('removes one leading dot per line and the terminator, per RFC 5321 4.5.2', () => {
    const cases: Array<[string, string]> = [
      ['.\r\n', ''],
      ['a\r\n.\r\n', 'a\r\n'],
      ['..\r\n.\r\n', '.\r\n'],
      ['..a\r\n...b\r\nc.d\r\n.\r\n', '.a\r\n..b\r\nc.d\r\n'],
      ['a\n.b\r\n.\r\n', 'a\n.b\r\n'],
      ['no terminator', 'no terminator'],
    ];
    for (const [raw, want] of cases) assert.equal(unstuff(Buffer.from(raw)).toString(), want, JSON.stringify(raw));
  });
});
