// The relay's HTTP side: /metrics for Prometheus, /healthz (live) and /readyz (ready) for
// the kubelet, POST /drain (the preStop hook, the operator's scale-down), and the queue API
// (/api/v1/queue, `mailrelay queue`). One route table says, per route, who may call it:
// "open" routes serve anyone (Prometheus and the kubelet carry no token); "admin" routes
// need loopback or the drain-token bearer, and every admin call is written to the log
// (who, from where, what, the outcome). A new endpoint is one more entry in the table.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { QueueAdmin } from './queue/admin.ts';
import { QUEUE_ACTIONS, QUEUE_STATES, type QueueAction, type QueueFilter, type QueueSelection } from './queue/types.ts';
import { MessageNotFoundError } from './spool/errors.ts';

/** Logger subset for the audit lines (pino fits). */
export interface HttpLog {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
  /** For the audit lines of polled routes; without it they are not logged. */
  debug?(o: object, msg?: string): void;
}

/** What the HTTP endpoints ask of the relay. */
export interface HttpHandlers {
  /** Where /metrics comes from: the relay's registry, or a multi-process relay's aggregate of its workers'. */
  registry: Pick<Registry, 'metrics' | 'contentType'>;
  /** Refreshes gauges computed on demand (queue depth) just before a scrape. */
  beforeScrape?: () => void;
  live: () => boolean;
  ready: () => { ok: boolean; reasons: string[] } | Promise<{ ok: boolean; reasons: string[] }>;
  /** exit: the preStop drain (deliver, then stop); hold: refuse mail but keep running (ADR 0003); undo: end a hold. */
  drain: (mode: 'exit' | 'hold' | 'undo') => Promise<boolean>;
  /** The bearer token admin calls must present unless they come from trusted loopback; without one only loopback may call them. */
  drainToken?: () => string;
  /** Loopback callers need no token (default true). */
  trustLoopback?: boolean;
  /** The queue operations; without them the queue API answers 404. */
  queue?: QueueOps;
  /** Where the audit lines go. */
  log?: HttpLog;
  /** More routes (e.g. a status endpoint), checked after the built-in ones. */
  routes?: Route[];
}

/** What the queue API calls: one relay's QueueAdmin, or a multi-process relay's merge of its shards'. */
export type QueueOps = Pick<QueueAdmin, 'list' | 'show' | 'act'>;

/** Who may call a route: anyone, or an administrator (trusted loopback or the bearer token). */
export type Access = 'open' | 'admin';

/** An answer: a status, and a body (objects are sent as JSON); `audit` adds fields to the audit line. */
export interface RouteReply {
  status: number;
  body: string | object;
  contentType?: string;
  audit?: Record<string, unknown>;
}

/** What a route handler gets. */
export interface RouteRequest {
  method: string;
  /** Capture groups of the path pattern. */
  params: string[];
  query: URLSearchParams;
  /** The JSON request body (undefined when empty); throws BadRequest on bad JSON. */
  json(): Promise<unknown>;
}

/** One endpoint. */
export interface Route {
  methods: readonly string[];
  /** The exact path, or a pattern whose groups become params. */
  path: string | RegExp;
  access: Access;
  /** Its name in audit lines and refusals (e.g. "hold", "drain"). */
  action: string | ((req: RouteRequest) => string);
  /** A read the operator polls every few seconds: its audit line is at debug level (refusals still warn). */
  polled?: boolean;
  handle(req: RouteRequest): Promise<RouteReply> | RouteReply;
}

/** A request the route refuses as malformed (400). */
export class BadRequest extends Error {}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;
const MAX_BODY = 64 * 1024;

/** Whether the peer address is loopback. */
export function isLoopback(remote: string | undefined): boolean {
  return remote !== undefined && LOOPBACK.test(remote);
}

/** Why an admin call was refused. */
export type Refusal = 'no_token_configured' | 'token_missing' | 'token_wrong';

/** The admin check: trusted loopback, else a bearer token equal to the configured one (compared in constant time). */
export function authorize(remote: string | undefined, authorization: string | undefined, token: string | undefined, trustLoopback = true):
  { ok: true; via: 'loopback' | 'token' } | { ok: false; status: 401 | 403; why: Refusal } {
  if (trustLoopback && isLoopback(remote)) return { ok: true, via: 'loopback' };
  const given = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
  if (!token) return { ok: false, status: 403, why: 'no_token_configured' };
  if (given === undefined) return { ok: false, status: 401, why: 'token_missing' };
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b) ? { ok: true, via: 'token' } : { ok: false, status: 403, why: 'token_wrong' };
}

function refusalText(what: string, why: Refusal): string {
  if (why === 'no_token_configured') return `${what} is open to loopback callers only: no drain token is configured`;
  if (why === 'token_missing') return `${what} needs the drain token (Authorization: Bearer <token>)`;
  return `${what} refused the bearer token: it is not the drain token`;
}

/** Whether a /drain request may proceed: loopback always (the preStop hook), others with the token. */
export function drainAllowed(remote: string | undefined, authorization: string | undefined, token: string | undefined): boolean {
  return authorize(remote, authorization, token).ok;
}

const json = (status: number, body: object, audit?: Record<string, unknown>): RouteReply => ({ status, body, ...(audit ? { audit } : {}) });

function filterFrom(q: URLSearchParams): QueueFilter {
  const f: QueueFilter = {};
  const state = q.get('state');
  if (state !== null) {
    if (!(QUEUE_STATES as readonly string[]).includes(state)) throw new BadRequest(`state must be one of ${QUEUE_STATES.join(', ')}`);
    f.state = state as QueueFilter['state'];
  }
  const num = (k: string): number | undefined => {
    const v = q.get(k);
    if (v === null) return undefined;
    if (!/^\d+(\.\d+)?$/.test(v)) throw new BadRequest(`${k} must be a number`);
    return Number(v);
  };
  const older = num('olderThan');
  if (older !== undefined) f.olderThanSeconds = older;
  const limit = num('limit');
  if (limit !== undefined) f.limit = limit;
  const dest = q.get('destination');
  if (dest !== null) f.destination = dest;
  const sender = q.get('sender');
  if (sender !== null) f.sender = sender;
  return f;
}

function selectionFrom(body: unknown): QueueSelection {
  if (typeof body !== 'object' || body === null) throw new BadRequest('the body must be a JSON object: {"ids": [...]}, {"all": true} or {"destination": "..."}');
  const b = body as Record<string, unknown>;
  const given = ['ids', 'all', 'destination'].filter((k) => b[k] !== undefined && b[k] !== false);
  if (given.length !== 1) throw new BadRequest('select messages with exactly one of ids, all, destination');
  if (b.ids !== undefined && !(Array.isArray(b.ids) && b.ids.length > 0 && b.ids.every((x) => typeof x === 'string'))) throw new BadRequest('ids must be a non-empty list of message ids');
  if (b.destination !== undefined && (typeof b.destination !== 'string' || b.destination === '')) throw new BadRequest('destination must be a domain');
  const sel: QueueSelection = {};
  if (b.ids !== undefined) sel.ids = b.ids;
  if (b.all === true) sel.all = true;
  if (typeof b.destination === 'string') sel.destination = b.destination;
  if (b.dsn === true) sel.dsn = true;
  return sel;
}

/** The built-in routes. */
function builtinRoutes(h: HttpHandlers): Route[] {
  const text = (status: number, body: string): RouteReply => ({ status, body, contentType: 'text/plain; charset=utf-8' });
  const queue = (): QueueOps => {
    if (!h.queue) throw new BadRequest('this relay has no queue API');
    return h.queue;
  };
  return [
    {
      methods: ['GET'], path: '/metrics', access: 'open', action: 'metrics',
      handle: async () => {
        h.beforeScrape?.();
        return { status: 200, body: await h.registry.metrics(), contentType: h.registry.contentType };
      },
    },
    { methods: ['GET', 'HEAD'], path: '/healthz', access: 'open', action: 'healthz', handle: () => (h.live() ? text(200, 'ok\n') : text(500, 'unhealthy\n')) },
    {
      methods: ['GET', 'HEAD'], path: '/readyz', access: 'open', action: 'readyz',
      handle: async () => {
        try {
          const r = await h.ready();
          return r.ok ? text(200, 'ready\n') : text(503, `not ready: ${r.reasons.join(', ')}\n`);
        } catch (err) {
          return text(503, `not ready: ${(err as Error).message}\n`);
        }
      },
    },
    {
      methods: ['POST', 'DELETE'], path: '/drain', access: 'admin', action: 'drain',
      handle: async (req) => {
        const hold = /^(true|1)$/.test(req.query.get('hold') ?? '');
        const mode = req.method === 'DELETE' ? 'undo' : hold ? 'hold' : 'exit';
        const ok = await h.drain(mode);
        return { ...text(ok ? 202 : 409, ok ? `${mode === 'undo' ? 'accepting' : 'draining'}\n` : 'an exit drain is in progress\n'), audit: { mode } };
      },
    },
    {
      methods: ['GET'], path: '/api/v1/queue', access: 'admin', action: 'list',
      handle: async (req) => {
        const f = filterFrom(req.query);
        const res = await queue().list(f);
        return json(200, res, { filter: f, matched: res.messages.length });
      },
    },
    {
      methods: ['GET'], path: /^\/api\/v1\/queue\/([0-9A-Za-z]+)$/, access: 'admin', action: 'show',
      handle: async (req) => {
        const id = req.params[0]!;
        try {
          return json(200, await queue().show(id), { queueIds: [id] });
        } catch (err) {
          if (err instanceof MessageNotFoundError) return json(404, { error: `${id}: no such message in the queue` }, { queueIds: [id] });
          throw err;
        }
      },
    },
    {
      methods: ['POST'], path: new RegExp(`^/api/v1/queue/(${QUEUE_ACTIONS.join('|')})$`), access: 'admin', action: (req) => req.params[0]!,
      handle: async (req) => {
        const action = req.params[0] as QueueAction;
        const sel = selectionFrom(await req.json());
        const res = await queue().act(action, sel);
        const results: Record<string, number> = {};
        for (const r of res.results) results[r.result] = (results[r.result] ?? 0) + 1;
        return json(200, res, { queueIds: res.results.map((r) => r.id), selection: sel, results });
      },
    },
  ];
}

function match(route: Route, method: string, path: string): string[] | undefined | 'method' {
  const params = typeof route.path === 'string' ? (route.path === path ? [] : undefined) : route.path.exec(path)?.slice(1);
  if (params === undefined) return undefined;
  return route.methods.includes(method) ? params : 'method';
}

/** Starts the HTTP server; resolves with its port and a close function. */
export async function startHttp(host: string, port: number, h: HttpHandlers): Promise<{ port: number; close: () => Promise<void> }> {
  const routes = [...builtinRoutes(h), ...(h.routes ?? [])];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://relay');
    const method = req.method ?? 'GET';
    const send = (r: RouteReply) => {
      const isText = typeof r.body === 'string';
      res.writeHead(r.status, { 'content-type': r.contentType ?? (isText ? 'text/plain; charset=utf-8' : 'application/json') });
      res.end(isText ? r.body as string : `${JSON.stringify(r.body, null, 2)}\n`);
    };
    let route: Route | undefined;
    let params: string[] | undefined;
    let wrongMethod = false;
    for (const r of routes) {
      const m = match(r, method, url.pathname);
      if (m === 'method') wrongMethod = true;
      else if (m !== undefined) {
        route = r;
        params = m;
        break;
      }
    }
    if (!route || !params) return send(wrongMethod ? { status: 405, body: { error: `${method} is not allowed on ${url.pathname}` } } : { status: 404, body: 'not found\n' });
    const request: RouteRequest = {
      method, params, query: url.searchParams,
      json: () => readJson(req),
    };
    const action = typeof route.action === 'string' ? route.action : route.action(request);
    const remote = req.socket.remoteAddress;
    let via: 'loopback' | 'token' | undefined;
    if (route.access === 'admin') {
      let token: string | undefined;
      try {
        token = h.drainToken?.();
      } catch {
        token = undefined; // the Secret is not mounted (yet): only loopback
      }
      const auth = authorize(remote, req.headers.authorization, token, h.trustLoopback ?? true);
      if (!auth.ok) {
        h.log?.warn({ audit: true, action, remote, method, path: url.pathname, status: auth.status, refused: auth.why }, `admin: ${action} refused`);
        // /drain keeps the plain-text answer the preStop hook and the operator have always read.
        return send(url.pathname === '/drain'
          ? { status: 403, body: `forbidden: /drain needs the drain token\n` }
          : { status: auth.status, body: { error: refusalText(url.pathname.startsWith('/api/v1/queue') ? 'the queue API' : url.pathname, auth.why) } });
      }
      via = auth.via;
    }
    Promise.resolve()
      .then(() => route.handle(request))
      .catch((err: unknown): RouteReply => (err instanceof BadRequest
        ? { status: 400, body: { error: err.message } }
        : { status: 500, body: { error: (err as Error).message } }))
      .then((reply) => {
        if (route.access === 'admin') {
          const line = { audit: true, action, remote, auth: via, method, path: url.pathname, status: reply.status, ...reply.audit };
          if (route.polled) h.log?.debug?.(line, `admin: ${action}`);
          else h.log?.info(line, `admin: ${action}`);
        }
        send(reply);
      }, () => undefined);
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

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new BadRequest(`the request body is over ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BadRequest('the request body is not valid JSON');
  }
}
