// SMTP AUTH users: a file of "user:hash" lines (mounted from a Kubernetes Secret),
// re-read when it changes, and password checks by hash type.
//
// Reloading: Kubernetes updates a mounted Secret by writing a new directory and swapping
// the "..data" symlink, so the file's inode changes and no watcher on the old path ever
// fires. Instead each AUTH stats the path (following the symlink) at most once per
// second and re-reads the file when its identity (device, inode, size, mtime, ctime)
// changed. No watcher to leak, and correct for editors that rename over the file too.
import { readFile, stat } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import type { Logger } from 'pino';

/** Outcome of a password check: 'unavailable' means we could not check it (454, retry later). */
export type VerifyResult = 'ok' | 'bad' | 'unavailable';

/** Checks passwords against one kind of hash, chosen by the hash's prefix. */
export interface PasswordVerifier {
  /** Name for logs ("bcrypt", "argon2"). */
  readonly name: string;
  /** Hash prefixes this verifier handles, e.g. "$2b$". */
  readonly prefixes: readonly string[];
  /** Resolves true if `password` matches `hash`; rejects if the hash is malformed. */
  verify(password: string, hash: string): Promise<boolean>;
}

/** bcrypt via bcryptjs (pure JS); $2y$ is PHP's name for the same algorithm as $2b$. */
export const bcryptVerifier: PasswordVerifier = {
  name: 'bcrypt',
  prefixes: ['$2a$', '$2b$', '$2y$'],
  verify: (password, hash) => bcrypt.compare(password, hash),
};

/** The hash prefix of argon2id (RFC 9106, PHC string format). No verifier ships by default: pass one in `verifiers` (e.g. built on hash-wasm's argon2Verify). */
export const ARGON2ID_PREFIX = '$argon2id$';

/** A line of the users file that was skipped, and why (never the hash itself). */
export interface UsersFileProblem {
  line: number;
  message: string;
}

/** Parses a users file (PURE): "user:hash" per line, blank lines and "#" comments ignored. */
export function parseUsersFile(text: string): { users: Map<string, string>; problems: UsersFileProblem[] } {
  const users = new Map<string, string>();
  const problems: UsersFileProblem[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    // Split at the first colon: neither bcrypt nor argon2 PHC hashes contain one.
    const colon = line.indexOf(':');
    const user = colon < 0 ? '' : line.slice(0, colon).trim();
    const hash = colon < 0 ? '' : line.slice(colon + 1).trim();
    if (user === '' || hash === '') {
      problems.push({ line: i + 1, message: 'not "user:hash"' });
      continue;
    }
    if (users.has(user)) problems.push({ line: i + 1, message: `user "${user}" appears again; the later line wins` });
    users.set(user, hash);
  }
  return { users, problems };
}

/** Checks SMTP AUTH credentials against the users file. */
export interface UserStore {
  /** Checks a username and password; re-reads the file first if it changed. */
  verify(username: string, password: string): Promise<VerifyResult>;
  /** Number of users currently loaded. */
  size(): number;
}

/** Options of loadUserStore. */
export interface UserStoreOptions {
  log?: Logger;
  /** Verifiers besides bcrypt (e.g. an argon2 one); matched by hash prefix. */
  verifiers?: readonly PasswordVerifier[];
  /** Clock, for tests (ms). */
  now?: () => number;
  /** Minimum time between two checks of the file (default 1000 ms). */
  recheckMs?: number;
}

// A bcrypt hash of a random password nobody knows. Unknown users are checked against it,
// so that a wrong username takes as long as a wrong password and does not reveal which
// usernames exist.
const DUMMY_HASH = '$2b$10$XCsqB/HT/ilhyAYTUqNj2.gwO5cDEJx/Za9QwEE7uj3mAk/OyJJHa';

const fingerprint = (s: { dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number }): string =>
  `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;

/** Loads the users file (throws if it cannot be read) and returns a store that follows its changes. */
export async function loadUserStore(file: string, opts: UserStoreOptions = {}): Promise<UserStore> {
  const log = opts.log;
  const now = opts.now ?? Date.now;
  const recheckMs = opts.recheckMs ?? 1000;
  const verifiers = [bcryptVerifier, ...(opts.verifiers ?? [])];
  const verifierFor = (hash: string): PasswordVerifier | undefined =>
    verifiers.find((v) => v.prefixes.some((p) => hash.startsWith(p)));

  let users = new Map<string, string>();
  let current = '';
  let available = true;
  let lastCheck = -Infinity;
  let reloading: Promise<void> | undefined;

  const read = async (): Promise<void> => {
    const st = await stat(file);
    const fp = fingerprint(st);
    if (fp === current) return;
    const parsed = parseUsersFile(await readFile(file, 'utf8'));
    for (const p of parsed.problems) log?.warn({ file, line: p.line }, `users file: ${p.message}`);
    for (const [user, hash] of parsed.users) {
      if (!verifierFor(hash)) {
        const hint = hash.startsWith(ARGON2ID_PREFIX) ? ' (argon2 needs a verifier plugged in)' : '';
        log?.warn({ file, user }, `users file: unsupported hash type${hint}; this user cannot log in`);
      }
    }
    users = parsed.users;
    current = fp;
    log?.info({ file, users: users.size }, 'users file loaded');
  };

  const refresh = async (): Promise<void> => {
    if (now() - lastCheck < recheckMs) return;
    lastCheck = now();
    reloading ??= read()
      .then(() => {
        if (!available) log?.info({ file }, 'users file readable again');
        available = true;
      })
      .catch((err: unknown) => {
        // Fail closed but temporarily: nobody logs in (454) until the file is back.
        if (available) log?.error({ file, err }, 'users file unreadable; AUTH answers 454 until it is back');
        available = false;
      })
      .finally(() => {
        reloading = undefined;
      });
    await reloading;
  };

  await read();
  lastCheck = now();

  return {
    size: () => users.size,
    async verify(username, password) {
      await refresh();
      if (!available) return 'unavailable';
      const hash = users.get(username);
      if (hash === undefined) {
        await bcrypt.compare(password, DUMMY_HASH);
        return 'bad';
      }
      const verifier = verifierFor(hash);
      // A configured user we cannot check is our problem, not a wrong password: 454 makes
      // the client retry instead of bouncing its mail.
      if (!verifier) return 'unavailable';
      try {
        return (await verifier.verify(password, hash)) ? 'ok' : 'bad';
      } catch (err) {
        log?.warn({ file, user: username, err }, `users file: malformed ${verifier.name} hash`);
        return 'unavailable';
      }
    },
  };
}
