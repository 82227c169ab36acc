// The HTTP client of the CLI commands that talk to a running relay (drain, queue): one
// request helper whose failures say which request failed and why in words, e.g.
// "POST http://127.0.0.1:9090/drain failed: connection refused (ECONNREFUSED)".
import { readFileSync } from 'node:fs';

/** A request to a relay that could not be made or was refused; the message says what was tried. */
export class RelayRequestError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = 'RelayRequestError';
  }
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_SOCKET: 'connection closed',
};

/** Words for a failed fetch: undici hides the errno in err.cause. */
export function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (err as { code?: string }).code;
  if (code !== undefined) return `${REASONS[code] ?? cause?.message ?? code} (${code})`;
  if ((err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError') return 'no answer in time';
  return cause?.message ?? (err as Error).message;
}

/** Where a relay's HTTP API is and how to authenticate to it. */
export interface RelayEndpoint {
  /** Base URL, e.g. http://127.0.0.1:9090. */
  url: string;
  /** Bearer token (the drain-token Secret); loopback callers need none. */
  token?: string;
}

/** The endpoint from --url/--token-file, else $MAILRELAY_URL/$MAILRELAY_TOKEN_FILE, else loopback:9090 without a token. */
export function endpointFrom(url: unknown, tokenFile: unknown, env: NodeJS.ProcessEnv = process.env): RelayEndpoint {
  const base = String(url ?? env.MAILRELAY_URL ?? 'http://127.0.0.1:9090').replace(/\/+$/, '');
  const file = tokenFile ?? env.MAILRELAY_TOKEN_FILE;
  if (file === undefined) return { url: base };
  let token: string;
  try {
    token = readFileSync(String(file), 'utf8').trim();
  } catch (err) {
    throw new RelayRequestError(`cannot read the token file ${String(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return { url: base, token };
}

/** Sends one request; resolves with the status and body (JSON when the relay sent JSON). Throws RelayRequestError when no answer came. */
export async function relayRequest(ep: RelayEndpoint, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<{ status: number; body: unknown }> {
  const url = `${ep.url}${path}`;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (ep.token) headers.authorization = `Bearer ${ep.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new RelayRequestError(`${method} ${url} failed: ${describeFetchError(err)}`);
  }
  const text = await res.text();
  let parsed: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('json')) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  return { status: res.status, body: parsed };
}

/** The error text of a non-2xx answer: the relay's JSON {error} or its plain text. */
export function answerError(method: string, path: string, status: number, body: unknown): RelayRequestError {
  const why = typeof body === 'object' && body !== null && 'error' in body ? String((body).error) : String(body).trim();
  return new RelayRequestError(`${method} ${path} answered ${status}: ${why}`, status);
}
