// A loopback HTTPS server for MTA-STS policies (RFC 8461 §3.3): it answers
// GET /.well-known/mta-sts.txt per Host header (mta-sts.<domain>) with what the test set,
// including faults (another status, a redirect, another content type, a slow or huge
// body), and records every request. Its certificate is whatever the test gives it, e.g.
// one from tls-cert.ts's test CA with DNS SANs for the mta-sts.<domain> names.
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TestCertificate } from './tls-cert.ts';
import { waitFor as pollUntil } from './wait.ts';

/** What the server answers for one domain. */
export interface PolicyResponse {
  /** Body (default: none). */
  body?: string;
  /** HTTP status (default 200). */
  status?: number;
  /** Content-Type (default text/plain; charset=utf-8). */
  contentType?: string;
  /** Extra headers (e.g. Location for a redirect). */
  headers?: Record<string, string>;
  /** Wait this long before answering, in ms. */
  delayMs?: number;
}

/** One request as received. */
export interface PolicyRequest {
  /** Host header, without the port. */
  host: string;
  /** Request path. */
  path: string;
  /** TLS SNI name the client sent. */
  servername: string | undefined;
}

/** A running policy server. */
export interface MtaStsServer {
  /** Port on 127.0.0.1. */
  port: number;
  /** Requests in order of arrival. */
  requests: PolicyRequest[];
  /** Sets (or with undefined removes: 404) the answer for `mta-sts.<domain>`. */
  set(domain: string, response: PolicyResponse | undefined): void;
  /** Requests for one domain's policy. */
  count(domain: string): number;
  /** Resolves once `predicate(this)` holds; rejects after `timeoutMs`. */
  waitFor(predicate: (s: MtaStsServer) => boolean, timeoutMs: number, what?: string): Promise<void>;
  /** Stops listening and drops connections. */
  close(): Promise<void>;
}

/** A policy body from its parts (LF line ends). */
export function policyText(mode: 'enforce' | 'testing' | 'none', mx: string[], maxAge = 86400): string {
  return ['version: STSv1', `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), `max_age: ${maxAge}`, ''].join('\n');
}

/** Starts the server on 127.0.0.1, port 0. */
export async function startMtaStsServer(cert: TestCertificate): Promise<MtaStsServer> {
  const answers = new Map<string, PolicyResponse>();
  const requests: PolicyRequest[] = [];
  const server = https.createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
    const servername = (req.socket as import('node:tls').TLSSocket).servername || undefined;
    requests.push({ host, path: req.url ?? '', servername });
    const a = req.url === '/.well-known/mta-sts.txt' ? answers.get(host) : undefined;
    const reply = () => {
      if (!a) {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
        return;
      }
      res.writeHead(a.status ?? 200, { 'Content-Type': a.contentType ?? 'text/plain; charset=utf-8', ...(a.headers ?? {}) });
      res.end(a.body ?? '');
    };
    if (a?.delayMs) setTimeout(reply, a.delayMs);
    else reply();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const self: MtaStsServer = {
    port: (server.address() as AddressInfo).port,
    requests,
    set(domain, response) {
      if (response) answers.set(`mta-sts.${domain}`, response);
      else answers.delete(`mta-sts.${domain}`);
    },
    count: (domain) => requests.filter((r) => r.host === `mta-sts.${domain}`).length,
    waitFor: (predicate, timeoutMs, what) => pollUntil(() => predicate(self), timeoutMs, what),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  return self;
}
