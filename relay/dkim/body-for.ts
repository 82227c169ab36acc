// The scheduler's `bodyFor` hook for DKIM: every transaction of a queued message sends the
// same DKIM-Signature field followed by the spooled message, unchanged.
//
// Trade-off. Signing needs the whole message (the body hash comes before the header can be
// signed), so a message is read twice: once to sign, once to send. We do NOT keep the
// signed message in memory for that (a 25 MB message times 64 deliveries in flight would be
// 1.6 GB); the signing pass streams the body through the hash and keeps only the header
// block, and the sending pass streams it from the spool again. Only the signature field
// (~0.5 KB) is kept, per message id in a bounded LRU, so a message is signed once: on its
// first attempt, and every retry and every further transaction (recipient splitting,
// several destinations) sends the very same signature. An id evicted from the LRU is signed
// again on its next attempt: a new t= and b=, still a valid signature over the same bytes.
//
// A message the signer refuses as malformed (DkimUnsignableError: an indented first line)
// is sent unsigned, and reported through onUnsigned, rather than deferred until it expires.
//
// The signature covers the CRLF-normalised message; the connection's DotStuffer turns the
// spooled bytes into exactly those bytes on the wire, so nothing is rewritten here.
//
// An 8-bit message (BODY=8BITMIME) is converted to 7 bits BEFORE it is signed, and the
// converted message is what every transaction sends (RFC 6376 §5.3: signers SHOULD convert
// to a 7-bit encoding when the message may be downgraded on the way). The engine would
// otherwise convert it for a next hop without 8BITMIME after signing, and break the
// signature; a 7-bit message passes that conversion unchanged. Such a message is read
// whole per transaction; the conversion is deterministic, so every send is the same bytes.
import { Readable } from 'node:stream';
import { downgradeTo7bit } from '../protocol/downgrade.ts';
import { DkimUnsignableError, type DkimSigner } from './signer.ts';

/** Options of dkimBodyFor. */
export interface DkimBodyForOptions {
  /** Signature fields kept for retries (default 4096, about 2 MB). */
  cacheEntries?: number;
  /** Called when a message is sent unsigned because it cannot be signed (DkimUnsignableError): log or count it. */
  onUnsigned?: (id: string, reason: string) => void;
}

const UNSIGNED = Buffer.alloc(0);

/** Builds the scheduler's `bodyFor`: (message) -> body source that yields the signature, then the spooled body. */
export function dkimBodyFor(
  signer: DkimSigner,
  openBody: (id: string) => Readable | AsyncIterable<Uint8Array>,
  opts: DkimBodyForOptions = {},
): (msg: { id: string; bodyType?: string }) => () => AsyncIterable<Uint8Array> {
  const cache = new SignatureCache(opts.cacheEntries ?? 4096);
  return (msg) => {
    const source = msg.bodyType === '8BITMIME' ? sevenBit(() => openBody(msg.id)) : () => openBody(msg.id);
    // One signing per attempt at most, shared by the attempt's transactions (which may run
    // at once, one per destination); a failure is not cached, the next attempt signs anew.
    let pending: Promise<Buffer> | null = null;
    const signature = (): Promise<Buffer> => {
      const hit = cache.get(msg.id);
      if (hit) return Promise.resolve(hit);
      pending ??= signer.signatureFor(source()).then((sig) => {
        cache.set(msg.id, sig);
        return sig;
      }, (err: unknown) => {
        // A malformed message goes out as it came rather than never; read errors still defer.
        if (!(err instanceof DkimUnsignableError)) throw err;
        opts.onUnsigned?.(msg.id, err.message);
        cache.set(msg.id, UNSIGNED);
        return UNSIGNED;
      });
      return pending;
    };
    return () => signedBody(signature, source);
  };
}

/** The message converted to 7 bits (unchanged if it cannot be: then the engine bounces it 5.6.3 where it must). */
function sevenBit(open: () => Readable | AsyncIterable<Uint8Array>): () => Readable {
  return () => Readable.from((async function* () {
    const chunks: Buffer[] = [];
    for await (const c of open()) chunks.push(Buffer.from(c as Uint8Array));
    const whole = Buffer.concat(chunks);
    const d = downgradeTo7bit(whole);
    yield d.ok ? d.bytes : whole;
  })());
}

async function* signedBody(
  signature: () => Promise<Buffer>,
  open: () => Readable | AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  // A signing error (unreadable spool body) throws here, before any body byte is written:
  // the connection fails the transaction and its recipients are deferred, never sent unsigned.
  const sig = await signature();
  if (sig.length > 0) yield sig;
  for await (const chunk of open()) yield chunk as Uint8Array;
}

/** A small LRU of signature fields by message id (a Map keeps insertion order). */
class SignatureCache {
  private readonly map = new Map<string, Buffer>();

  constructor(private readonly max: number) {}

  get(id: string): Buffer | undefined {
    const v = this.map.get(id);
    if (v !== undefined) {
      this.map.delete(id);
      this.map.set(id, v);
    }
    return v;
  }

  set(id: string, v: Buffer): void {
    this.map.delete(id);
    this.map.set(id, v);
    while (this.map.size > this.max) {
      const oldest = this.map.keys().next();
      if (oldest.done === true) break;
      this.map.delete(oldest.value);
    }
  }
}
