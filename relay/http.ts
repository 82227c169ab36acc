// The relay's HTTP side: /metrics for Prometheus, /healthz (live) and /readyz (ready) for
// the kubelet, POST /drain to start a graceful drain on demand (the preStop hook), and
// GET /status, the queue and spool state the operator's autoscaler reads (relay/status.ts).
// /drain and /status are admin endpoints: loopback, or the drain token as a bearer.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import type { Registry } from 'prom-client';

/** What the HTTP endpoints ask of the relay. */
export interface HttpHandlers {
  registry: Registry;
  /** Refreshes gauges computed on demand (queue depth) just before a scrape. */
  beforeScrape?: () => void;
  live: () => boolean;
  ready: () => { ok: boolean; reasons: string[] };
  /** exit: the preStop drain (deliver, then stop); hold: refuse mail but keep running (ADR 0003); undo: end a hold. */
  drain: (mode: 'exit' | 'hold' | 'undo') => Promise<boolean>;
  /** The bearer token non-loopback /drain and /status calls must present; without one only loopback may call them. */
  drainToken?: () => string;
  /** The /status document; without it /status answers 404. */
  status?: () => Promise<object>;
}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

/** Whether a /drain request may proceed: loopback always (the preStop hook), others with the token. */
export function drainAllowed(remote: string | undefined, authorization: string | undefined, token: string | undefined): boolean {
  if (remote !== undefined && LOOPBACK.test(remote)) return true;
  if (!token) return false;
  const given = /^Bearer (.+)$/.exec(authorization ?? '')?.[1] ?? '';
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Starts the HTTP server; resolves with its port and a close function. */
export async function startHttp(host: string, port: number, h: HttpHandlers): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (url === '/metrics' && req.method === 'GET') {
      h.beforeScrape?.();
      h.registry.metrics().then((text) => send(200, text, h.registry.contentType), (err: Error) => send(500, err.message));
      return;
    }
    if (url === '/healthz') return send(h.live() ? 200 : 500, h.live() ? 'ok\n' : 'unhealthy\n');
    if (url === '/readyz') {
      const r = h.ready();
      return send(r.ok ? 200 : 503, r.ok ? 'ready\n' : `not ready: ${r.reasons.join(', ')}\n`);
    }
    const admin = () => {
      let token: string | undefined;
      try {
        token = h.drainToken?.();
      } catch {
        token = undefined;
      }
      return drainAllowed(req.socket.remoteAddress, req.headers.authorization, token);
    };
    if (url === '/status' && req.method === 'GET' && h.status) {
      // Queue depths and learned limits are the operator's to read, like /drain is its to call.
      if (!admin()) return send(403, 'forbidden: /status needs the drain token\n');
      h.status().then((doc) => send(200, `${JSON.stringify(doc)}\n`, 'application/json'), (err: Error) => send(500, `${err.message}\n`));
      return;
    }
    if (url === '/drain' && (req.method === 'POST' || req.method === 'DELETE')) {
      if (!admin()) return send(403, 'forbidden: /drain needs the drain token\n');
      const hold = /[?&]hold=(true|1)\b/.test(req.url ?? '');
      const mode = req.method === 'DELETE' ? 'undo' : hold ? 'hold' : 'exit';
      h.drain(mode).then(
        (ok) => send(ok ? 202 : 409, ok ? `${mode === 'undo' ? 'accepting' : 'draining'}\n` : 'an exit drain is in progress\n'),
        (err: Error) => send(500, `${err.message}\n`),
      );
      return;
    }
    send(404, 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
