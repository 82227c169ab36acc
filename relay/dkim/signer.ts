// DKIM signing of outgoing mail: RFC 6376 with rsa-sha256 or ed25519-sha256 (RFC 8463),
// relaxed/relaxed canonicalization, From and the fields that decide how a message reads
// over-signed (RFC 6376 §8.15), so a second From, Subject or Content-Type added on the
// way breaks the signature instead of riding on it.
//
// What is signed is exactly what the receiver reconstructs: the message with every bare CR
// and bare LF turned into CRLF and a final CRLF added, i.e. what relay/protocol/dot-stuff.ts
// puts on the wire before stuffing (and what a server's unstuffing gives back). The
// DKIM-Signature field is prepended; the message itself is sent unchanged, and the
// DotStuffer normalises it on the way out to the very bytes that were hashed.
import { createHash, createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DotStuffer } from '../protocol/dot-stuff.ts';
import { canonicalHeader, formatSignature, parseHeaders, relaxedBodyHasher, type BodyHasher, type ParsedHeader } from './mailauth-internals.ts';
import { dkimDnsRecord } from './record.ts';

/** The fields signed when present (RFC 6376 §5.4.1's list, the MIME fields, and List-Unsubscribe-Post for RFC 8058 §4). */
export const SIGNED_HEADERS: readonly string[] = [
  'From', 'Sender', 'Reply-To', 'Subject', 'Date', 'Message-ID', 'To', 'Cc', 'MIME-Version', 'Content-Type',
  'Content-Transfer-Encoding', 'Content-ID', 'Content-Description', 'Resent-Date', 'Resent-From', 'Resent-Sender',
  'Resent-To', 'Resent-Cc', 'Resent-Message-ID', 'In-Reply-To', 'References', 'List-Id', 'List-Help',
  'List-Unsubscribe', 'List-Unsubscribe-Post', 'List-Subscribe', 'List-Post', 'List-Owner', 'List-Archive',
];

/**
 * Fields named once more in h= than the message has them (RFC 6376 §5.4.2: a name with no
 * instance left signs the null string), so none can be added after signing. Date and
 * Message-ID are left out on purpose: MTAs add them to messages that lack them.
 */
export const OVERSIGNED_HEADERS: readonly string[] = [
  'From', 'Reply-To', 'Subject', 'To', 'Cc', 'MIME-Version', 'Content-Type', 'Content-Transfer-Encoding',
];

/** The signature algorithms we produce: RFC 6376 §3.3 rsa-sha256, RFC 8463 ed25519-sha256. */
export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** The relay config's `delivery.dkim` section. */
export interface DkimConfig {
  domain: string;
  selector: string;
  keyFile: string;
}

/** Signer settings beyond the config (tests pin the clock; the header lists can be narrowed). */
export interface DkimSignerOptions {
  /** Clock for t= (ms since the epoch). */
  clock?: () => number;
  /** Fields to sign when present (default SIGNED_HEADERS). */
  signedHeaders?: readonly string[];
  /** Fields to over-sign (default OVERSIGNED_HEADERS); every one of them must also be in signedHeaders. */
  oversignedHeaders?: readonly string[];
}

/** A DKIM key that cannot be used, with the file it came from. */
export class DkimKeyError extends Error {
  constructor(readonly keyFile: string, message: string) {
    super(`DKIM key ${keyFile}: ${message}`);
    this.name = 'DkimKeyError';
  }
}

/**
 * A message that cannot be signed as it is: its first line starts with a space or tab, so
 * the DKIM-Signature field put before it would absorb that line as a continuation (RFC 5322
 * §2.2.3) and the receiver would see a different header than the one signed. Only a
 * malformed message does this (the relay's inbound always puts a Received field first).
 */
export class DkimUnsignableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DkimUnsignableError';
  }
}

/** RFC 8301 §3.2 lets verifiers accept 1024-bit keys, but signers SHOULD use 2048: we require it. */
export const MIN_RSA_BITS = 2048;

const SELECTOR_RE = /^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*$/;
// A-labels or U-labels; anything that could end the tag (";", "=", whitespace) is refused.
const DOMAIN_RE = /^(?!-)[^\s;=.]+(?:\.[^\s;=.]+)+$/u;

/** Reads a PEM private key and returns a signer; throws DkimKeyError naming keyFile when the key cannot sign. */
export function loadDkimSigner(cfg: DkimConfig, opts: DkimSignerOptions = {}): DkimSigner {
  let pem: Buffer;
  try {
    pem = readFileSync(cfg.keyFile);
  } catch (err) {
    throw new DkimKeyError(cfg.keyFile, `cannot read the key file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new DkimKeyError(cfg.keyFile, `not a usable PEM private key (${(err as Error).message})`);
  }
  return new DkimSigner(key, cfg.domain, cfg.selector, opts, cfg.keyFile);
}

/** Signs messages for one d=/s= with one key. */
export class DkimSigner {
  /** a= of every signature. */
  readonly algorithm: DkimAlgorithm;
  /** The TXT record to publish at `<selector>._domainkey.<domain>` (RFC 6376 §3.6.1). */
  readonly dnsRecord: string;
  private readonly clock: () => number;
  private readonly signed: ReadonlySet<string>;
  private readonly oversigned: readonly string[];

  /** Checks the key (type, size, that it can sign) and the names; `source` names the key in errors. */
  constructor(
    private readonly key: KeyObject,
    readonly domain: string,
    readonly selector: string,
    opts: DkimSignerOptions = {},
    source = '(in memory)',
  ) {
    if (key.type !== 'private') throw new DkimKeyError(source, `a private key is needed, got a ${key.type} key`);
    if (key.asymmetricKeyType === 'rsa') {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) {
        throw new DkimKeyError(source, `RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are required (RFC 8301 §3.2)`);
      }
      this.algorithm = 'rsa-sha256';
    } else if (key.asymmetricKeyType === 'ed25519') {
      this.algorithm = 'ed25519-sha256';
    } else {
      throw new DkimKeyError(source, `key type ${key.asymmetricKeyType ?? 'unknown'} cannot sign DKIM; use RSA (2048 bits or more, PKCS#1 v1.5) or Ed25519 (RFC 8463)`);
    }
    if (!DOMAIN_RE.test(domain)) throw new DkimKeyError(source, `d= domain ${JSON.stringify(domain)} is not a domain name`);
    if (!SELECTOR_RE.test(selector)) throw new DkimKeyError(source, `s= selector ${JSON.stringify(selector)} is not a valid selector (RFC 6376 §3.1)`);
    // Fail at start, not on the first message: a key that cannot sign would defer all mail.
    try {
      this.rawSign(Buffer.from('mailrelay DKIM key probe'));
    } catch (err) {
      throw new DkimKeyError(source, `signing failed (${(err as Error).message})`);
    }
    this.clock = opts.clock ?? Date.now;
    const signed = opts.signedHeaders ?? SIGNED_HEADERS;
    this.signed = new Set(signed.map((h) => h.toLowerCase()));
    this.oversigned = opts.oversignedHeaders ?? OVERSIGNED_HEADERS;
    for (const h of this.oversigned) {
      if (!this.signed.has(h.toLowerCase())) throw new Error(`DKIM: over-signed field ${h} is not in the signed list`);
    }
    this.dnsRecord = dkimDnsRecord(key);
  }

  /**
   * Reads the message once (streaming: only the header block is kept in memory) and returns
   * the `DKIM-Signature: ...\r\n` field to prepend to it. Throws DkimUnsignableError for a
   * message whose first line is indented.
   */
  async signatureFor(message: AsyncIterable<Uint8Array> | Uint8Array): Promise<Buffer> {
    const digest = new MessageDigest();
    if (message instanceof Uint8Array) digest.push(message);
    else for await (const chunk of message) digest.push(chunk);
    const { header, bodyHash } = digest.end();
    return this.signParts(header, bodyHash);
  }

  /** Returns the CRLF-normalised message with a DKIM-Signature field prepended (buffers the whole message). */
  async sign(message: AsyncIterable<Uint8Array> | Uint8Array): Promise<Buffer> {
    const norm = new DotStuffer({ stuff: false });
    const parts: Buffer[] = [];
    if (message instanceof Uint8Array) parts.push(norm.push(message));
    else for await (const chunk of message) parts.push(norm.push(chunk));
    parts.push(norm.end(false));
    const body = Buffer.concat(parts);
    return Buffer.concat([await this.signatureFor(body), body]);
  }

  /** Signs a header block (CRLF line endings, without the blank line) and a relaxed body hash. */
  signParts(headerBlock: Buffer, bodyHash: string): Buffer {
    if (headerBlock[0] === 0x20 || headerBlock[0] === 0x09) {
      throw new DkimUnsignableError('the message starts with a folded (indented) line; a prepended DKIM-Signature would absorb it');
    }
    const fields = headerBlock.length === 0 ? [] : parseHeaders(headerBlock);
    // RFC 6376 §5.4.2: several instances of a field are signed from the bottom up.
    const instances: ParsedHeader[] = [];
    for (let i = fields.length - 1; i >= 0; i--) {
      const f = fields[i]!;
      if (f.key !== null && this.signed.has(f.key)) instances.push(f);
    }
    const names = [...instances.map((f) => f.casedKey ?? f.key ?? ''), ...this.oversigned];
    const { canonicalizedHeader, dkimHeaderOpts } = canonicalHeader('DKIM', { keys: names.join(': '), headers: instances }, {
      signingDomain: this.domain,
      selector: this.selector,
      algorithm: this.algorithm,
      canonicalization: 'relaxed/relaxed',
      bodyHash,
      signTime: new Date(this.clock()),
    });
    dkimHeaderOpts.b = this.rawSign(canonicalizedHeader).toString('base64');
    return Buffer.from(`${formatSignature(dkimHeaderOpts)}\r\n`, 'latin1');
  }

  private rawSign(data: Buffer): Buffer {
    // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the canonical header, not the header itself.
    return this.algorithm === 'rsa-sha256'
      ? cryptoSign('sha256', data, this.key)
      : cryptoSign(null, createHash('sha256').update(data).digest(), this.key);
  }
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * Streaming split of a message into its header block and the relaxed hash of its body,
 * over the CRLF-normalised bytes (the same normaliser the wire uses).
 */
class MessageDigest {
  private readonly norm = new DotStuffer({ stuff: false });
  private readonly hasher: BodyHasher = relaxedBodyHasher();
  private inHeader = true;
  private acc: Buffer[] = [];
  private accLen = 0;
  // The last bytes of ("\r\n" + header so far): the virtual CRLF makes a message that starts
  // with an empty line have an empty header block, found by the same search.
  private tail = Buffer.from('\r\n');
  private header: Buffer | null = null;

  push(chunk: Uint8Array): void {
    this.feed(this.norm.push(chunk));
  }

  end(): { header: Buffer; bodyHash: string } {
    this.feed(this.norm.end(false));
    let header: Buffer;
    if (this.inHeader) {
      // No empty line: it is all header (RFC 5322 §3.5 makes the body optional).
      header = Buffer.concat(this.acc);
      this.acc = [];
    } else {
      header = this.header!;
    }
    return { header, bodyHash: this.hasher.digest('base64') };
  }

  private feed(b: Buffer): void {
    if (b.length === 0) return;
    if (!this.inHeader) {
      this.hasher.update(b);
      return;
    }
    const window = Buffer.concat([this.tail, b]);
    const windowStart = this.accLen - this.tail.length;
    this.acc.push(b);
    this.accLen += b.length;
    const idx = window.indexOf(CRLFCRLF);
    if (idx < 0) {
      this.tail = Buffer.from(window.subarray(Math.max(0, window.length - 3)));
      return;
    }
    // The header block keeps the CRLF of its last field; the body starts after the empty line.
    const headerEnd = windowStart + idx + 2;
    const all = Buffer.concat(this.acc);
    this.header = all.subarray(0, headerEnd);
    this.acc = [];
    this.inHeader = false;
    const rest = all.subarray(headerEnd + 2);
    if (rest.length > 0) this.hasher.update(rest);
  }
}
