// Listen failures that say which listener could not bind, and where: a relay has two
// (SMTP and HTTP), and "EADDRINUSE" alone does not tell an operator which port to free.

const REASONS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'address not available on this host',
  ENOTFOUND: 'host name not found',
};

/** A listener that could not start: `SMTP listener: cannot listen on 127.0.0.1:2525: address already in use (EADDRINUSE)`. */
export class ListenError extends Error {
  constructor(readonly listener: string, readonly host: string, readonly port: number, readonly code: string | undefined, cause: unknown) {
    super(`${listener}: cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${code ? `${REASONS[code] ?? (cause as Error).message} (${code})` : (cause as Error).message}`, { cause });
    this.name = 'ListenError';
  }
}

/** Runs a listen; turns its failure into a ListenError naming the listener. */
export async function listenNamed<T>(listener: string, host: string, port: number, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (err) {
    throw new ListenError(listener, host, port, (err as NodeJS.ErrnoException).code, err);
  }
}
