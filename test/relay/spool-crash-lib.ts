// Shared by the crash test and its child: the deterministic content of message number seq, so
// the test can check every message it finds after a crash byte for byte, including ones whose
// id the child never got to print.

/** Body size of message seq: mostly small (inline), every 5th above the 8 KiB inline limit. */
export function bodySize(seq: number): number {
  return seq % 5 === 0 ? 9000 + ((seq * 7919) % 30000) : 100 + ((seq * 7919) % 3000);
}

/** The exact body bytes of message seq. */
export function bodyFor(seq: number): Buffer {
  const n = bodySize(seq);
  const b = Buffer.allocUnsafe(n);
  let x = (seq * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** Recipients of every crash-test message. */
export const RECIPIENTS = ['a@example.com', 'b@example.net', 'c@example.org'];

/** Spool options both sides use. */
export const CRASH_SPOOL_OPTIONS = { fsync: true, maxSegmentBytes: 256 * 1024, inlineBodyMaxBytes: 8 * 1024 } as const;
