// Adapts smtp-server's DATA stream into the body a MessageSink reads: the Received
// header first, then the message with line endings normalised (line-endings.ts),
// streamed with backpressure (never buffered whole), cut off with an error the moment
// it exceeds the size limit or the client goes away, so the sink never makes a
// truncated or oversized message durable.
//
// The client's data is always read to its final dot, even when the sink has stopped
// reading (it failed, or the message is too big): smtp-server sends our reply when its
// stream ends, and a reply before the client finished sending would be read as the
// answer to the wrong command.
//
// Line endings are normalised and the content limits (content-limits.ts) checked right
// here, synchronously as each chunk arrives, like the size limit: a broken limit is known
// before the client's data ends, whatever the sink's pace.
import { PassThrough } from 'node:stream';
import type { Readable } from 'node:stream';
import { MessageScanner } from './content-limits.ts';
import type { ContentLimits, ContentViolation } from './content-limits.ts';
import { flushLineEndings, normaliseChunk } from './line-endings.ts';
import type { LineEndingState } from './line-endings.ts';

/** The body went over the size limit; the sink's iteration throws this. */
export class MessageTooBigError extends Error {
  override readonly name = 'MessageTooBigError';
  constructor() {
    super('message exceeds the size limit');
  }
}

/** The client closed the connection before the final dot; the sink's iteration throws this. */
export class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
  constructor(cause?: unknown) {
    super('client closed the connection during DATA', { cause });
  }
}

/** The message broke a content limit (line length, header size); the sink's iteration throws this. */
export class ContentLimitError extends Error {
  override readonly name = 'ContentLimitError';
  constructor(readonly violation: ContentViolation) {
    super(`message data broke a limit: ${violation}`);
  }
}

/** How the client's DATA ended. */
export type DataOutcome = 'complete' | 'too_big' | 'aborted' | ContentViolation;

/** A message body in transit from the client to the sink. */
export interface MessageBody {
  /** What the sink reads: the prefix, then the normalised message. */
  readonly body: AsyncIterable<Buffer>;
  /** Settles once the client's data ended (final dot) or the connection dropped. */
  readonly done: Promise<DataOutcome>;
  /** True once the sink has read the body to its end. */
  consumed(): boolean;
  /** Bytes produced for the sink (prefix included). */
  bytes(): number;
  /** Stops feeding the sink and reads the rest of the client's data into the void. */
  discard(): void;
}

/** The DATA stream: a Readable that sets `sizeExceeded` once over the limit and counts `byteLength` as received. */
export type DataStream = Readable & { sizeExceeded?: boolean; byteLength?: number };

/** Starts moving `stream` into a MessageBody, after `prefix`, enforcing `limits` when given. */
export function openMessageBody(stream: DataStream, prefix: Buffer, limits?: ContentLimits): MessageBody {
  const out = new PassThrough({ highWaterMark: 64 * 1024 });
  const eol: LineEndingState = { pendingCR: false };
  const scanner = limits ? new MessageScanner(limits) : undefined;
  let bytesOut = 0;
  const write = (b: Buffer): boolean => {
    if (b.length === 0) return true;
    bytesOut += b.length;
    return out.write(b);
  };
  // Errors reach the sink through its iteration; this listener only keeps an error on a
  // stream nobody iterates (the sink gave up early) from crashing the process.
  out.on('error', () => {});
  let feeding = true;
  let consumed = false;
  let settle: (o: DataOutcome) => void = () => {};
  const done = new Promise<DataOutcome>((resolve) => {
    settle = resolve;
  });

  const stopFeeding = (err?: Error): void => {
    if (!feeding) return;
    feeding = false;
    if (!out.destroyed) out.destroy(err);
    stream.resume();
  };

  out.on('end', () => {
    consumed = true;
  });
  // The sink stopped iterating before the end (break/return): drain the client.
  out.on('close', () => stopFeeding());
  out.on('drain', () => {
    if (feeding) stream.resume();
  });

  write(prefix);
  const scan = (b: Buffer): Buffer => (scanner ? scanner.push(b) : b);
  stream.on('data', (chunk: Buffer) => {
    if (!feeding) return;
    // smtp-server counts the bytes before it emits them, so the flag already covers this chunk.
    if (stream.sizeExceeded) {
      stopFeeding(new MessageTooBigError());
      return;
    }
    const next = scan(normaliseChunk(chunk, eol));
    if (scanner?.violation) {
      stopFeeding(new ContentLimitError(scanner.violation));
      return;
    }
    if (!write(next)) stream.pause();
  });
  stream.on('end', () => {
    const tooBig = stream.sizeExceeded === true;
    if (feeding && !tooBig) {
      const tail = scan(flushLineEndings(eol));
      const held = scanner ? scanner.end() : Buffer.alloc(0);
      if (scanner?.violation) stopFeeding(new ContentLimitError(scanner.violation));
      else {
        write(tail);
        write(held);
      }
    }
    if (feeding) {
      feeding = false;
      if (tooBig) out.destroy(new MessageTooBigError());
      else out.end();
    }
    settle(tooBig ? 'too_big' : scanner?.violation ?? 'complete');
  });
  const gone = (err?: unknown): void => {
    if (stream.readableEnded) return;
    stopFeeding(new ClientGoneError(err));
    settle('aborted');
  };
  stream.on('error', gone);
  stream.on('close', () => gone());

  return {
    body: out as AsyncIterable<Buffer>,
    done,
    consumed: () => consumed,
    bytes: () => bytesOut,
    discard: () => stopFeeding(),
  };
}
