// Message ids: 26 characters of Crockford base32 (ULID layout): 10 characters of millisecond
// time, then 16 characters (80 bits) of randomness. Sortable as strings in creation order,
// safe as file names on any filesystem (upper case only, so case-folding filesystems are fine).
// Within one generator, ids created in the same millisecond (or after the clock stepped back)
// increment the random part, so ordering stays strict without coordination.

import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const ID_RE = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;
const TIME_CHARS = 10;
const RANDOM_CHARS = 16;
const MAX_TIME = 2 ** 48 - 1;

/** True if s has the shape of a message id (also what makes it safe to use as a file name). */
export function isMessageId(s: string): boolean {
  return ID_RE.test(s);
}

/** The millisecond timestamp encoded in an id. */
export function idTime(id: string): number {
  let t = 0;
  for (let i = 0; i < TIME_CHARS; i++) t = t * 32 + ALPHABET.indexOf(id.charAt(i));
  return t;
}

/** Returns a function that makes strictly increasing, unique ids from the given clock. */
export function createIdGenerator(clock: () => number = Date.now, random: (buf: Uint8Array) => void = randomFillSync): () => string {
  let lastTime = -1;
  const digits = new Uint8Array(RANDOM_CHARS); // base32 digit values of the random part
  const rnd = new Uint8Array(RANDOM_CHARS);
  return () => {
    let now = Math.floor(clock());
    if (!(now >= 0)) now = 0;
    if (now > MAX_TIME) now = MAX_TIME;
    if (now > lastTime) {
      lastTime = now;
      random(rnd);
      // The first digit keeps one bit of headroom so that incrementing cannot overflow in practice.
      for (let i = 0; i < RANDOM_CHARS; i++) digits[i] = (rnd[i] ?? 0) & (i === 0 ? 0x0f : 0x1f);
    } else {
      increment(digits);
    }
    let s = '';
    let t = lastTime;
    const time: string[] = new Array<string>(TIME_CHARS);
    for (let i = TIME_CHARS - 1; i >= 0; i--) {
      time[i] = ALPHABET.charAt(t % 32);
      t = Math.floor(t / 32);
    }
    s = time.join('');
    for (let i = 0; i < RANDOM_CHARS; i++) s += ALPHABET.charAt(digits[i] ?? 0);
    return s;
  };
}

function increment(digits: Uint8Array): void {
  for (let i = digits.length - 1; i >= 0; i--) {
    const d = (digits[i] ?? 0) + 1;
    if (d < 32) {
      digits[i] = d;
      return;
    }
    digits[i] = 0;
  }
  // 2^79 ids in one millisecond: unreachable; wrapping would break ordering, so refuse.
  throw new RangeError('spool: id space for this millisecond exhausted');
}
