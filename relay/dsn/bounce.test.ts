import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { parseHeaderValue } from 'nodemailer/lib/mime-funcs/index.js';
import { buildDsn, dsnBodyType, DsnInputError, SUBJECT_DELAYED, SUBJECT_DELIVERED, SUBJECT_FAILED } from './bounce.ts';
import { dsnEnvelope } from './notify.ts';
import type { DsnInput, DsnRecipient } from './types.ts';

// ---- a strict little MIME reader for the tests ---------------------------------------------
// No full MIME parser is installed (mailparser is not a dependency; mailauth only splits a
// header from a body for DKIM), so the structure is checked here, strictly: CRLF only, no
// line over 998 octets, every multipart has its delimiters and exactly one close delimiter,
// and Content-Type parameters are read with nodemailer's own header-value parser.

interface Entity {
  headers: Map<string, string[]>; // lower-case name → unfolded values
  rawHeader: string;
  body: string; // latin1, so bytes survive
  type: string; // lower-case media type
  params: Record<string, string>;
  parts: Entity[]; // multipart children, or the one message/rfc822 inside
}

function assertWireFormat(raw: Buffer): void {
  const s = raw.toString('latin1');
  assert.doesNotMatch(s, /\r(?!\n)/, 'no bare CR');
  assert.doesNotMatch(s, /(?<!\r)\n/, 'no bare LF');
  assert.ok(s.endsWith('\r\n'), 'ends with CRLF');
  for (const line of s.split('\r\n')) assert.ok(Buffer.byteLength(line, 'latin1') <= 998, `line over 998 octets: ${line.slice(0, 60)}…`);
}

function parseEntity(text: string): Entity {
  const sep = text.startsWith('\r\n') ? 0 : text.indexOf('\r\n\r\n');
  const rawHeader = sep === -1 ? text : text.slice(0, sep === 0 ? 0 : sep + 2);
  const body = sep === -1 ? '' : text.slice(sep === 0 ? 2 : sep + 4);
  const headers = new Map<string, string[]>();
  for (const field of rawHeader.replace(/\r\n(?=[ \t])/g, '').split('\r\n').filter((l) => l !== '')) {
    const colon = field.indexOf(':');
    assert.ok(colon > 0, `header field without a colon: ${field}`);
    const name = field.slice(0, colon).toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), field.slice(colon + 1).trim()]);
  }
  const ct = parseHeaderValue(headers.get('content-type')?.[0] ?? 'text/plain');
  const entity: Entity = { headers, rawHeader, body, type: ct.value.toLowerCase(), params: ct.params, parts: [] };
  if (entity.type.startsWith('multipart/')) {
    const boundary = ct.params.boundary;
    assert.ok(boundary, 'multipart without boundary');
    const lines = body.split('\r\n');
    const opens = lines.flatMap((l, i) => (l === `--${boundary}` ? [i] : []));
    const closes = lines.flatMap((l, i) => (l === `--${boundary}--` ? [i] : []));
    assert.equal(closes.length, 1, 'exactly one close delimiter');
    assert.ok(opens.length > 0 && opens.every((i) => i < closes[0]!), 'delimiters before the close delimiter');
    const bounds = [...opens, closes[0]!];
    for (let k = 0; k < opens.length; k++) {
      entity.parts.push(parseEntity(lines.slice(bounds[k]! + 1, bounds[k + 1]).join('\r\n')));
    }
  } else if (entity.type === 'message/rfc822') {
    entity.parts.push(parseEntity(body));
  }
  return entity;
}

function header(e: Entity, name: string): string | undefined {
  return e.headers.get(name.toLowerCase())?.[0];
}

/** Parses a DSN and checks the invariants every DSN must keep; returns its three parts. */
function parseDsn(raw: Buffer) {
  assertWireFormat(raw);
  const root = parseEntity(raw.toString('latin1'));
  assert.equal(root.type, 'multipart/report');
  assert.equal(root.params['report-type'], 'delivery-status');
  assert.match(header(root, 'Content-Type')!, /^multipart\/report; report-type=delivery-status; boundary=/);
  assert.equal(root.parts.length, 3, 'three parts');
  const [text, status, original] = root.parts as [Entity, Entity, Entity];
  assert.equal(text.type, 'text/plain');
  assert.equal(status.type, 'message/delivery-status');
  assert.equal(header(status, 'Content-Transfer-Encoding'), '7bit');
  assert.ok(['message/rfc822', 'text/rfc822-headers'].includes(original.type), original.type);
  assert.ok(['7bit', '8bit'].includes(header(original, 'Content-Transfer-Encoding')!), 'returned part is never encoded');
  // The delivery-status body: per-message block, then one block per recipient.
  assert.ok(status.body.endsWith('\r\n'));
  const blocks = status.body.replace(/\r\n$/, '').split('\r\n\r\n').map(fieldsOf);
  return { raw: raw.toString('latin1'), root, text, status, original, perMessage: blocks[0]!, groups: blocks.slice(1) };
}

/** One block of DSN fields as [name, unfolded value] pairs, in order. */
function fieldsOf(block: string): [string, string][] {
  return block.replace(/\r\n(?=[ \t])/g, '').split('\r\n').map((l) => {
    const colon = l.indexOf(':');
    assert.ok(colon > 0, `field without a colon: ${l}`);
    return [l.slice(0, colon), l.slice(colon + 2)];
  });
}

function field(block: [string, string][], name: string): string | undefined {
  return block.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
}

// ---- fixtures ------------------------------------------------------------------------------

const HEADER = 'Received: from client.example by relay.example; Thu, 2 Jan 2025 03:04:05 +0000\r\n' +
  'From: Alice <alice@client.example>\r\nTo: bob@dest.example\r\nSubject: quarterly numbers\r\n' +
  'Message-ID: <orig-1@client.example>\r\n';
const BODY = 'Hello Bob,\r\n\r\nthe secret body line.\r\n.a line starting with a dot\r\n';
const ORIGINAL = Buffer.from(`${HEADER}\r\n${BODY}`);

const T0 = Date.UTC(2025, 0, 2, 3, 4, 5);
const NOW = Date.UTC(2025, 0, 7, 5, 0, 0);

function failed552(extra: Partial<DsnRecipient> = {}): DsnRecipient {
  return {
    address: 'bob@dest.example', orcpt: 'rfc822;Bob@Dest.example', action: 'failed', status: '5.2.2',
    remoteMta: 'dns;mx.dest.example', diagnostic: '552 5.2.2 Mailbox full', lastAttemptAt: T0 + 60_000, ...extra,
  };
}

function input(over: Partial<DsnInput> = {}): DsnInput {
  return {
    reportingMta: 'relay.example', from: 'MAILER-DAEMON@relay.example', to: 'alice@client.example',
    envid: 'QQ314159', arrivalDate: T0, recipients: [failed552()], ret: 'HDRS', originalMessage: ORIGINAL,
    messageId: 'dsn-1@relay.example', now: NOW, ...over,
  };
}

async function* chunked(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

// ---- tests ---------------------------------------------------------------------------------

test('a 552 5.2.2 failure: action failed, status 5.2.2, and the reply verbatim as Diagnostic-Code', async () => {
  const dsn = parseDsn(await buildDsn(input()));
  assert.deepEqual(dsn.perMessage, [
    ['Original-Envelope-Id', 'QQ314159'],
    ['Reporting-MTA', 'dns; relay.example'],
    ['Arrival-Date', 'Thu, 02 Jan 2025 03:04:05 +0000'],
  ]);
  assert.equal(dsn.groups.length, 1);
  assert.deepEqual(dsn.groups[0], [
    ['Original-Recipient', 'rfc822; Bob@Dest.example'],
    ['Final-Recipient', 'rfc822; bob@dest.example'],
    ['Action', 'failed'],
    ['Status', '5.2.2'],
    ['Remote-MTA', 'dns; mx.dest.example'],
    ['Diagnostic-Code', 'smtp; 552 5.2.2 Mailbox full'],
    ['Last-Attempt-Date', 'Thu, 02 Jan 2025 03:05:05 +0000'],
  ]);
  assert.match(dsn.raw, /\r\nDiagnostic-Code: smtp; 552 5\.2\.2 Mailbox full\r\n/, 'verbatim on the wire too');
  // The human-readable part names the recipient and quotes the remote reply.
  assert.match(dsn.text.body, /<bob@dest\.example>/);
  assert.match(dsn.text.body, /host mx\.dest\.example said: 552 5\.2\.2 Mailbox full/);
});

test('the message headers: From, To, Subject, Auto-Submitted, Date and Message-ID', async () => {
  const { root } = parseDsn(await buildDsn(input()));
  assert.equal(header(root, 'From'), 'Mail Delivery System <MAILER-DAEMON@relay.example>');
  assert.equal(header(root, 'To'), 'alice@client.example');
  assert.equal(header(root, 'Subject'), SUBJECT_FAILED);
  assert.equal(header(root, 'Subject'), 'Undelivered Mail Returned to Sender');
  assert.equal(header(root, 'Auto-Submitted'), 'auto-replied');
  assert.equal(header(root, 'Date'), 'Tue, 07 Jan 2025 05:00:00 +0000');
  assert.equal(header(root, 'Message-ID'), '<dsn-1@relay.example>');
  assert.equal(header(root, 'MIME-Version'), '1.0');
});

test('without messageId and now, a fresh Message-ID at the reporting MTA and the current Date', async () => {
  const { root } = parseDsn(await buildDsn(input({ messageId: undefined, now: undefined })));
  assert.match(header(root, 'Message-ID')!, /^<[0-9a-f-]{36}@relay\.example>$/);
  assert.ok(Math.abs(Date.parse(header(root, 'Date')!) - Date.now()) < 60_000);
});

test('two recipients give two per-recipient groups, each after an empty line', async () => {
  const carol: DsnRecipient = { address: 'carol@dest.example', action: 'failed', status: '5.1.1', remoteMta: 'mx.dest.example', diagnostic: '550 5.1.1 No such user' };
  const dsn = parseDsn(await buildDsn(input({ recipients: [failed552(), carol] })));
  assert.equal(dsn.groups.length, 2);
  assert.equal(field(dsn.groups[0]!, 'Final-Recipient'), 'rfc822; bob@dest.example');
  assert.equal(field(dsn.groups[1]!, 'Final-Recipient'), 'rfc822; carol@dest.example');
  assert.equal(field(dsn.groups[1]!, 'Diagnostic-Code'), 'smtp; 550 5.1.1 No such user');
  assert.equal(field(dsn.groups[1]!, 'Remote-MTA'), 'dns; mx.dest.example', 'a bare host gets the dns type');
  assert.equal(field(dsn.groups[1]!, 'Original-Recipient'), undefined, 'no ORCPT, no Original-Recipient (RFC 3461 §6.3 d)');
  assert.match(dsn.status.body, /Mailbox full\r\nLast-Attempt-Date: [^\r]+\r\n\r\nFinal-Recipient: rfc822; carol@dest\.example\r\n/);
  assert.match(dsn.text.body, /<carol@dest\.example>\r\n {4}host mx\.dest\.example said: 550 5\.1\.1 No such user/);
});

test('RET=HDRS returns only the header, as text/rfc822-headers', async () => {
  const dsn = parseDsn(await buildDsn(input({ ret: 'HDRS' })));
  assert.equal(dsn.original.type, 'text/rfc822-headers');
  assert.equal(dsn.original.body, HEADER, 'exactly the header section');
  assert.doesNotMatch(dsn.raw, /secret body line/);
  assert.match(dsn.text.body, /header of your message is attached/);
});

test('RET=FULL returns the whole message as message/rfc822', async () => {
  const dsn = parseDsn(await buildDsn(input({ ret: 'FULL' })));
  assert.equal(dsn.original.type, 'message/rfc822');
  assert.equal(header(dsn.original, 'Content-Transfer-Encoding'), '7bit');
  assert.equal(dsn.original.body, ORIGINAL.toString('latin1'), 'byte for byte');
  const inner = dsn.original.parts[0]!;
  assert.equal(header(inner, 'Subject'), 'quarterly numbers');
  assert.match(inner.body, /secret body line/);
  assert.match(dsn.text.body, /Your message is attached below/);
});

test('RET=FULL read from a stream in small chunks gives the same message/rfc822 part', async () => {
  const fromBuffer = parseDsn(await buildDsn(input({ ret: 'FULL' })));
  const fromStream = parseDsn(await buildDsn(input({ ret: 'FULL', originalMessage: chunked(ORIGINAL, 7) })));
  const fromReadable = parseDsn(await buildDsn(input({ ret: 'FULL', originalMessage: Readable.from([ORIGINAL.toString('latin1')]) })));
  assert.equal(fromStream.original.body, fromBuffer.original.body);
  assert.equal(fromReadable.original.body, fromBuffer.original.body);
});

test('RET=FULL over the size cap returns the header only and says why', async () => {
  const big = Buffer.concat([Buffer.from(`${HEADER}\r\n`), Buffer.alloc(4096, 'x\r\n')]);
  for (const originalMessage of [big, chunked(big, 1000)]) {
    const dsn = parseDsn(await buildDsn(input({ ret: 'FULL', originalMessage, maxReturnBytes: 2048 })));
    assert.equal(dsn.original.type, 'text/rfc822-headers');
    assert.equal(dsn.original.body, HEADER);
    assert.match(dsn.text.body, /too big to return whole/);
  }
});

test('RET=HDRS stops reading a streamed original once the header is in', async () => {
  let pulled = 0;
  let closed = false;
  async function* source(): AsyncGenerator<Buffer> {
    try {
      yield Buffer.from(HEADER.slice(0, 40));
      pulled++;
      yield Buffer.from(`${HEADER.slice(40)}\r`);
      pulled++;
      yield Buffer.from('\nbody\r\n');
      pulled++;
      for (;;) {
        yield Buffer.from('more body\r\n');
        pulled++;
      }
    } finally {
      closed = true;
    }
  }
  const dsn = parseDsn(await buildDsn(input({ ret: 'HDRS', originalMessage: source() })));
  assert.equal(dsn.original.body, HEADER);
  assert.equal(closed, true, 'the source was closed');
  assert.equal(pulled, 2, 'not resumed after the chunk that completed the header');
});

test('an LF-only original is returned with CRLF line endings', async () => {
  const lf = Buffer.from(ORIGINAL.toString('latin1').replace(/\r\n/g, '\n'));
  const hdrs = parseDsn(await buildDsn(input({ ret: 'HDRS', originalMessage: lf })));
  assert.equal(hdrs.original.body, HEADER);
  const full = parseDsn(await buildDsn(input({ ret: 'FULL', originalMessage: lf })));
  assert.equal(full.original.body, ORIGINAL.toString('latin1'));
});

test('an original with a line over 998 octets is not returnable whole: header only', async () => {
  const longLine = Buffer.from(`${HEADER}\r\n${'y'.repeat(2000)}\r\n`);
  const dsn = parseDsn(await buildDsn(input({ ret: 'FULL', originalMessage: longLine })));
  assert.equal(dsn.original.type, 'text/rfc822-headers');
  assert.match(dsn.text.body, /could not be returned whole/);
});

test('an 8-bit original returned whole is labelled 8bit and needs BODY=8BITMIME', async () => {
  const eight = Buffer.from(`${HEADER}\r\nGrüße aus Köln\r\n`, 'utf8');
  const raw = await buildDsn(input({ ret: 'FULL', originalMessage: eight }));
  const dsn = parseDsn(raw);
  assert.equal(header(dsn.original, 'Content-Transfer-Encoding'), '8bit');
  assert.equal(Buffer.from(dsn.original.body, 'latin1').toString('utf8'), eight.toString('utf8'));
  assert.equal(dsnBodyType(raw), '8BITMIME');
  assert.equal(dsnBodyType(await buildDsn(input())), '7BIT');
});

test('an expired recipient: action failed with status 4.4.7', async () => {
  const expired: DsnRecipient = {
    address: 'dave@slow.example', action: 'failed', status: '4.4.7', remoteMta: 'dns; mx.slow.example',
    diagnostic: '451 4.3.0 Temporary failure, try again later', lastAttemptAt: NOW - 3_600_000,
  };
  const dsn = parseDsn(await buildDsn(input({ recipients: [expired] })));
  assert.equal(field(dsn.groups[0]!, 'Action'), 'failed');
  assert.equal(field(dsn.groups[0]!, 'Status'), '4.4.7');
  assert.equal(field(dsn.groups[0]!, 'Diagnostic-Code'), 'smtp; 451 4.3.0 Temporary failure, try again later');
  assert.equal(field(dsn.groups[0]!, 'Will-Retry-Until'), undefined);
  assert.equal(header(dsn.root, 'Subject'), SUBJECT_FAILED);
  assert.match(dsn.text.body, /stayed in the queue for too long/);
});

test('a delay DSN: action delayed, Will-Retry-Until, its own subject, and the header only even with RET=FULL', async () => {
  const delayed: DsnRecipient = {
    address: 'erin@slow.example', action: 'delayed', status: '4.4.1', remoteMta: 'dns;mx.slow.example',
    diagnostic: '421 4.4.1 Connection timed out', lastAttemptAt: NOW - 60_000, willRetryUntil: T0 + 5 * 86_400_000,
  };
  const dsn = parseDsn(await buildDsn(input({ recipients: [delayed], ret: 'FULL' })));
  assert.equal(header(dsn.root, 'Subject'), SUBJECT_DELAYED);
  assert.equal(header(dsn.root, 'Subject'), 'Delayed Mail (still being retried)');
  assert.equal(field(dsn.groups[0]!, 'Action'), 'delayed');
  assert.equal(field(dsn.groups[0]!, 'Status'), '4.4.1');
  assert.equal(field(dsn.groups[0]!, 'Will-Retry-Until'), 'Tue, 07 Jan 2025 03:04:05 +0000');
  assert.equal(dsn.original.type, 'text/rfc822-headers', 'RFC 3461 §4.3: RET=FULL is for failed DSNs');
  assert.doesNotMatch(dsn.raw, /secret body line/);
  assert.match(dsn.text.body, /will keep trying until Tue, 07 Jan 2025 03:04:05 \+0000/);
});

test('a success DSN (NOTIFY=SUCCESS) has action delivered and the success subject', async () => {
  const ok: DsnRecipient = { address: 'bob@dest.example', action: 'delivered', status: '2.0.0', remoteMta: 'mx.dest.example', diagnostic: '250 2.0.0 Ok: queued as 4711' };
  const dsn = parseDsn(await buildDsn(input({ recipients: [ok] })));
  assert.equal(header(dsn.root, 'Subject'), SUBJECT_DELIVERED);
  assert.equal(field(dsn.groups[0]!, 'Action'), 'delivered');
  assert.equal(field(dsn.groups[0]!, 'Diagnostic-Code'), 'smtp; 250 2.0.0 Ok: queued as 4711');
});

test('mixed failed and delayed recipients: the failure subject, and each group keeps its own action', async () => {
  const delayed: DsnRecipient = { address: 'erin@slow.example', action: 'delayed', status: '4.4.1', willRetryUntil: NOW + 86_400_000 };
  const dsn = parseDsn(await buildDsn(input({ recipients: [failed552(), delayed], ret: 'FULL' })));
  assert.equal(header(dsn.root, 'Subject'), SUBJECT_FAILED);
  assert.deepEqual(dsn.groups.map((g) => field(g, 'Action')), ['failed', 'delayed']);
  assert.equal(dsn.original.type, 'message/rfc822');
});

test('a reply carrying CR/LF cannot forge DSN fields, and a long reply is folded but unfolds verbatim', async () => {
  const sneaky = failed552({ diagnostic: '550 5.7.1 rejected\r\nAction: delivered\r\nStatus: 2.0.0' });
  const long = failed552({ address: 'long@dest.example', diagnostic: `550 5.7.1 ${'policy words '.repeat(120).trim()}` });
  const dsn = parseDsn(await buildDsn(input({ recipients: [sneaky, long] })));
  assert.deepEqual(dsn.groups[0]!.filter(([n]) => n === 'Action' || n === 'Status'), [['Action', 'failed'], ['Status', '5.2.2']]);
  assert.equal(field(dsn.groups[0]!, 'Diagnostic-Code'), 'smtp; 550 5.7.1 rejected  Action: delivered  Status: 2.0.0');
  assert.equal(field(dsn.groups[1]!, 'Diagnostic-Code'), `smtp; ${long.diagnostic}`);
  const lines = dsn.status.body.split('\r\n');
  assert.ok(lines.every((l) => l.length <= 78 || !l.includes(' ')), 'folded to 78 where there are spaces');
});

test('SMTPUTF8 addresses and non-ASCII replies stay 7bit in the delivery-status part (RFC 6533 escapes)', async () => {
  const intl = failed552({ address: 'jösé@bücher.example', orcpt: 'rfc822;Jösé@bücher.example', diagnostic: '550 5.1.1 Benutzer unbekannt – nein' });
  const dsn = parseDsn(await buildDsn(input({ recipients: [intl] })));
  assert.equal(field(dsn.groups[0]!, 'Final-Recipient'), 'utf-8; j\\x{F6}s\\x{E9}@b\\x{FC}cher.example');
  assert.equal(field(dsn.groups[0]!, 'Original-Recipient'), 'utf-8; J\\x{F6}s\\x{E9}@b\\x{FC}cher.example');
  assert.equal(field(dsn.groups[0]!, 'Diagnostic-Code'), 'smtp; 550 5.1.1 Benutzer unbekannt \\x{2013} nein');
  // The human-readable part keeps the text as sent (nodemailer picks the charset and encoding).
  assert.match(header(dsn.text, 'Content-Type')!, /charset=utf-8/);
});

test('a DSN is never addressed to the null reverse-path, and needs a recipient to report on', async () => {
  await assert.rejects(buildDsn(input({ to: '' })), DsnInputError);
  await assert.rejects(buildDsn(input({ to: '<>' })), DsnInputError);
  await assert.rejects(buildDsn(input({ recipients: [] })), DsnInputError);
});

test('the DSN goes out with the null reverse-path to the original sender', () => {
  assert.deepEqual(dsnEnvelope(input()), { from: '', to: ['alice@client.example'] });
});

test('a malformed status falls back to the generic code of the action class', async () => {
  const dsn = parseDsn(await buildDsn(input({ recipients: [failed552({ status: 'bogus' })] })));
  assert.equal(field(dsn.groups[0]!, 'Status'), '5.0.0');
});

test('a diagnostic that is not an SMTP reply gets a private diagnostic type', async () => {
  const dsn = parseDsn(await buildDsn(input({ recipients: [failed552({ diagnostic: 'connection refused by mx.dest.example' })] })));
  assert.equal(field(dsn.groups[0]!, 'Diagnostic-Code'), 'X-mailrelay; connection refused by mx.dest.example');
});

test('the test MIME reader itself rejects broken structure (so the checks above are not vacuous)', async () => {
  const good = (await buildDsn(input())).toString('latin1');
  const boundary = /boundary="([^"]+)"/.exec(good)![1]!;
  assert.throws(() => parseDsn(Buffer.from(good.replace(`--${boundary}--`, ''), 'latin1')), /close delimiter/);
  assert.throws(() => parseDsn(Buffer.from(good.replace('Action: failed\r\n', 'Action: failed\n'), 'latin1')), /bare LF/);
  assert.throws(() => parseDsn(Buffer.from(good.replace('Mailbox full', 'x'.repeat(1000)), 'latin1')), /998/);
  assert.throws(() => parseDsn(Buffer.from(good.replace('multipart/report', 'multipart/mixed'), 'latin1')));
});
