// EHLO capabilities (RFC 5321 §4.1.1.1): the keywords that change how we talk.
import type { Reply } from './reply.ts';

/** The extensions a server offered in its EHLO reply that the engine uses. */
export interface Capabilities {
  esmtp: boolean;
  pipelining: boolean;          // RFC 2920
  size: number | null;          // RFC 1870; 0 = no fixed limit announced
  eightBitMime: boolean;        // RFC 6152
  smtpUtf8: boolean;            // RFC 6531
  startTls: boolean;            // RFC 3207
  auth: string[];               // RFC 4954 mechanisms, upper-case
  chunking: boolean;            // RFC 3030
  binaryMime: boolean;          // RFC 3030
  enhancedStatusCodes: boolean; // RFC 2034
  dsn: boolean;                 // RFC 3461
}

/** Capabilities of a server that only spoke HELO (RFC 821): none. */
export const NO_CAPABILITIES: Capabilities = {
  esmtp: false, pipelining: false, size: null, eightBitMime: false, smtpUtf8: false, startTls: false,
  auth: [], chunking: false, binaryMime: false, enhancedStatusCodes: false, dsn: false,
};

/** Parses a 250 EHLO reply; the first line is the greeting, each further line one keyword. */
export function parseCapabilities(reply: Reply): Capabilities {
  const caps: Capabilities = { ...NO_CAPABILITIES, auth: [], esmtp: true };
  for (const line of reply.lines.slice(1)) {
    const [kw = '', ...params] = line.trim().split(/[\s=]+/);
    switch (kw.toUpperCase()) {
      case 'PIPELINING': caps.pipelining = true; break;
      case 'SIZE': caps.size = Number(params[0] ?? 0) || 0; break;
      case '8BITMIME': caps.eightBitMime = true; break;
      case 'SMTPUTF8': caps.smtpUtf8 = true; break;
      case 'STARTTLS': caps.startTls = true; break;
      case 'AUTH': caps.auth = params.map((p) => p.toUpperCase()).filter(Boolean); break;
      case 'CHUNKING': caps.chunking = true; break;
      case 'BINARYMIME': caps.binaryMime = true; break;
      case 'ENHANCEDSTATUSCODES': caps.enhancedStatusCodes = true; break;
      case 'DSN': caps.dsn = true; break;
      default: break;
    }
  }
  return caps;
}
