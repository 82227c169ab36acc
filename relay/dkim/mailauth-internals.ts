// Typed access to the pieces of mailauth's own DKIM signer (lib/dkim/dkim-signer.js) that we
// reuse: its header parser, its RFC 6376 §3.4.4 relaxed body hash, and the function that
// builds the canonical header block and the DKIM-Signature field. We call them instead of
// `dkimSign` only because `dkimSign` cannot over-sign (RFC 6376 §8.15): it lists in h= only
// the fields the message has, so an added second From would still verify.
//
// These are not mailauth's public API. relay/dkim/signer.test.ts pins them: with over-signing
// off, our signature must equal `dkimSign`'s byte for byte, so an upgrade that moves or
// changes them fails that test instead of producing bad signatures.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** One header field as mailauth parses it: lower-cased name, name as written, raw bytes (folded, no final CRLF). */
export interface ParsedHeader {
  key: string | null;
  casedKey: string | undefined;
  line: Buffer;
}

/** Streaming DKIM body hasher (mailauth's RelaxedHash / SimpleHash). */
export interface BodyHasher {
  update(chunk: Buffer): void;
  digest(encoding: 'base64'): string;
}

/** The tag values mailauth puts into a DKIM-Signature (b= is filled in after signing). */
export interface DkimHeaderOpts {
  a: string;
  c: string;
  s: string;
  d: string;
  h: string;
  bh: string;
  t?: number;
  b?: string;
}

/** What `generateCanonicalizedHeader` needs to know about the signature. */
export interface CanonicalHeaderOptions {
  signingDomain: string;
  selector: string;
  algorithm: string;
  canonicalization: string;
  bodyHash: string;
  /** Always set: without it mailauth reads the clock twice and t= can differ between the signed and the sent header. */
  signTime: Date;
}

interface Tools {
  parseHeaders(buf: Buffer): { parsed: ParsedHeader[]; original: Buffer };
  formatSignatureHeaderLine(type: 'DKIM', values: DkimHeaderOpts, folded: boolean): string;
}
interface BodyModule {
  dkimBody(canonicalization: string, hashAlgo: string, maxBodyLength: number | false): BodyHasher;
}
interface HeaderModule {
  generateCanonicalizedHeader(
    type: 'DKIM',
    signingHeaderLines: { keys: string; headers: ParsedHeader[] },
    options: CanonicalHeaderOptions,
  ): { canonicalizedHeader: Buffer; signatureHeaderLine: string; dkimHeaderOpts: DkimHeaderOpts };
}

const tools = require('mailauth/lib/tools.js') as Tools;
const body = require('mailauth/lib/dkim/body/index.js') as BodyModule;
const header = require('mailauth/lib/dkim/header/index.js') as HeaderModule;

/** Splits a header block (CRLF line endings) into fields, unfolding continuation lines into their field. */
export const parseHeaders = (buf: Buffer): ParsedHeader[] => tools.parseHeaders(buf).parsed;
/** A new RFC 6376 §3.4.4 relaxed body hasher for sha256. */
export const relaxedBodyHasher = (): BodyHasher => body.dkimBody('relaxed', 'sha256', false);
/** The canonical header block to sign (signed fields, then the DKIM-Signature with an empty b=), RFC 6376 §3.7. */
export const canonicalHeader = header.generateCanonicalizedHeader;
/** Formats a DKIM-Signature field, folded (no trailing CRLF). */
export const formatSignature = (values: DkimHeaderOpts): string => tools.formatSignatureHeaderLine('DKIM', values, true);
