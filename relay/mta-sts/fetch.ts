// Fetches an MTA-STS policy over HTTPS (RFC 8461 §3.3): GET
// https://mta-sts.<domain>/.well-known/mta-sts.txt, with a certificate that must chain to
// a trusted CA and be valid for mta-sts.<domain>; no redirects, no HTTP caching, text/plain
// only, a bounded body and a deadline. The host is resolved with the relay's own DNS
// resolver (the one MX lookups use), so tests point it at a loopback DNS server.
import https from 'node:https';
import tls from 'node:tls';
import type { IncomingMessage } from 'node:http';
import { MAX_POLICY_BYTES } from './policy.ts';
import { isCertificateError } from '../protocol/tls-problem.ts';

/** Why no policy text came back, as RFC 8460 §4.3.2.2 names it. */
export type StsFetchFailure = 'sts-policy-fetch-error' | 'sts-webpki-invalid';

/** The policy body, or why there is none. */
export type StsFetchResult = { ok: true; text: string } | { ok: false; type: StsFetchFailure; reason: string };

/** How to reach the policy host. */
export interface StsFetchOptions {
  /** HTTPS port: 443 in production (delivery.mtaSts.port); tests use a loopback port. */
  port: number;
  /** Deadline for the whole fetch, in ms. */
  timeoutMs: number;
  /** CA certificates to trust (default store plus extras); undefined = the default store. */
  ca?: string[];
  /** Addresses of a host name (the relay's resolver, A then AAAA). */
  addresses(host: string): Promise<string[]>;
}

/** Fetches the policy text of a domain; never throws. */
export async function fetchStsPolicy(domain: string, opts: StsFetchOptions): Promise<StsFetchResult> {
  const host = `mta-sts.${domain}`;
  let addrs: string[];
  try {
    addrs = await opts.addresses(host);
  } catch (err) {
    return { ok: false, type: 'sts-policy-fetch-error', reason: `${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  if (addrs.length === 0) return { ok: false, type: 'sts-policy-fetch-error', reason: `${host} has no address` };
  const deadline = Date.now() + opts.timeoutMs;
  let last: StsFetchResult = { ok: false, type: 'sts-policy-fetch-error', reason: `${host}: not reachable` };
  for (const address of addrs) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    last = await get(host, address, opts, left);
    // Only a failure to connect moves on to the next address; an answer is the answer.
    if (last.ok || !('retry' in last)) return strip(last);
  }
  return strip(last);
}

type Attempt = StsFetchResult | ({ ok: false; type: StsFetchFailure; reason: string; retry: true });

function strip(r: Attempt): StsFetchResult {
  if (r.ok) return r;
  return { ok: false, type: r.type, reason: r.reason };
}

function get(host: string, address: string, opts: StsFetchOptions, timeoutMs: number): Promise<Attempt> {
  const url = `https://${host}${opts.port === 443 ? '' : `:${opts.port}`}/.well-known/mta-sts.txt`;
  return new Promise<Attempt>((resolve) => {
    let settled = false;
    const done = (r: Attempt) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const req = https.request({
      host: address, port: opts.port, path: '/.well-known/mta-sts.txt', method: 'GET',
      servername: host,
      headers: { Host: opts.port === 443 ? host : `${host}:${opts.port}`, Accept: 'text/plain', 'User-Agent': 'mailrelay MTA-STS' },
      ...(opts.ca ? { ca: opts.ca } : {}),
      rejectUnauthorized: true,
      // The certificate must be valid for mta-sts.<domain>, whatever address we reached.
      checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert),
      minVersion: 'TLSv1.2',
      agent: false,
    }, (res) => onResponse(res));
    const timer = setTimeout(() => done({ ok: false, type: 'sts-policy-fetch-error', reason: `${url}: no complete answer within ${timeoutMs} ms` }), timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (isCertificateError(err.code)) {
        done({ ok: false, type: 'sts-webpki-invalid', reason: `${url}: certificate not valid for ${host}: ${err.message}` });
      } else if (err.code === 'ECONNREFUSED' || err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH' || err.code === 'ECONNRESET') {
        done({ ok: false, type: 'sts-policy-fetch-error', reason: `${url} (${address}): ${err.code}`, retry: true });
      } else {
        done({ ok: false, type: 'sts-policy-fetch-error', reason: `${url}: ${err.message}` });
      }
    });
    req.end();

    function onResponse(res: IncomingMessage): void {
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        // RFC 8461 §3.3: HTTP 3xx redirects MUST NOT be followed.
        const what = status >= 300 && status < 400 ? `redirect ${status} (not followed, RFC 8461 §3.3)` : `HTTP ${status}`;
        done({ ok: false, type: 'sts-policy-fetch-error', reason: `${url}: ${what}` });
        return;
      }
      const type = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'text/plain') {
        // RFC 8461 §3.3: senders SHOULD check the media type is text/plain.
        done({ ok: false, type: 'sts-policy-fetch-error', reason: `${url}: content type "${type || 'none'}", not text/plain` });
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_POLICY_BYTES) {
          done({ ok: false, type: 'sts-policy-fetch-error', reason: `${url}: policy larger than ${MAX_POLICY_BYTES} bytes` });
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => done({ ok: true, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => done({ ok: false, type: 'sts-policy-fetch-error', reason: `${url}: ${err.message}` }));
    }
  });
}
