// The operator's HTTP endpoint: /metrics (the operator registry), /healthz (the process
// serves) and /readyz (the informer caches are synced; a replica waiting for the Lease is
// ready too, it can take over at once). The chart probes these on port 8080.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** Options of startHealthServer. */
export interface HealthServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  registry: Registry;
  /** Readiness; the reasons are shown when false. */
  ready: () => { ok: boolean; reasons: string[] };
}

/** A running health server. */
export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

/** Starts the /metrics, /healthz, /readyz server. */
export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    if (path === '/metrics') {
      opts.registry.metrics().then((text) => send(200, text, opts.registry.contentType), (err: Error) => send(500, `${err.message}\n`));
      return;
    }
    if (path === '/healthz' || path === '/livez') return send(200, 'ok\n');
    if (path === '/readyz') {
      const r = opts.ready();
      return send(r.ok ? 200 : 503, r.ok ? 'ready\n' : `not ready: ${r.reasons.join(', ')}\n`);
    }
    send(404, 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
