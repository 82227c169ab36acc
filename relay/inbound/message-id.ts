// The Message-ID of an incoming message, for the log lines that follow it (Postfix logs it
// at cleanup; operators search by it). Read from the header section as the body streams in:
// only the header is buffered, never the body.

/** Longest Message-ID kept (RFC 5322 §2.1.1 line limit); anything longer is not one. */
const MAX_ID = 998;

/** The Message-ID field's value (RFC 5322 §3.6.4), "<...>", from a header section; undefined if there is none. */
export function messageIdOf(header: Buffer | string): string | undefined {
  const text = typeof header === 'string' ? header : header.toString('utf8');
  const end = text.search(/\r?\n\r?\n/);
  const lines = (end < 0 ? text : text.slice(0, end)).split(/\r?\n/);
  let field = '';
  const check = (f: string): string | undefined => {
    const m = /^message-id[ \t]*:(.*)$/is.exec(f);
    if (!m) return undefined;
    const v = /<[^<>\s]+>/.exec(m[1]!)?.[0] ?? m[1]!.trim();
    return v !== '' && v.length <= MAX_ID ? v : undefined;
  };
  for (const line of lines) {
    // RFC 5322 §2.2.3: a line starting with white space continues the field (folding).
    if (/^[ \t]/.test(line)) {
      field += line;
      continue;
    }
    const found = check(field);
    if (found !== undefined) return found;
    field = line;
  }
  return check(field);
}

/**
 * Reads a body stream until the end of its header section (or max bytes), and returns those
 * bytes and a stream of the whole body, the bytes already read first. Errors of the source
 * reach whoever reads either.
 */
export async function peekHeader(body: AsyncIterable<Buffer | Uint8Array | string>, max: number): Promise<{ header: Buffer; body: AsyncIterable<Buffer> }> {
  const it = body[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let size = 0;
  let done = false;
  // Bounded by max: stops at the blank line, the end of the stream, or max bytes.
  while (size < max) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    head.push(chunk);
    size += chunk.length;
    const soFar = Buffer.concat(head);
    if (soFar.includes('\r\n\r\n') || soFar.includes('\n\n')) break;
  }
  const header = Buffer.concat(head);
  async function* whole(): AsyncGenerator<Buffer> {
    if (header.length > 0) yield header;
    if (done) return;
    for (let r = await it.next(); !r.done; r = await it.next()) {
      yield typeof r.value === 'string' ? Buffer.from(r.value) : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    }
  }
  return { header, body: whole() };
}
