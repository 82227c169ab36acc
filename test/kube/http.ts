// HTTP routing of the Kubernetes REST API onto ApiCore: discovery, the resource
// paths (namespaced, cluster-scoped, all-namespace lists, subresources, the legacy
// /watch/ prefix), watch streams, Status errors, Warning headers and the request log.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiCore, ListQuery, WriteOptions, WriteResult } from './operations.ts';
import type { ResourceType } from './registry.ts';
import { ApiError, expired, failure } from './status.ts';
import type { Status } from './status.ts';
import type { StoreEvent } from './store.ts';
import { grKey } from './store.ts';
import { isObj } from './types.ts';
import type { KubeObject, RequestLogEntry } from './types.ts';

/** Options of the HTTP front end. */
export interface HttpOptions {
  /** Bearer token every request must carry; none required when unset. */
  token?: string;
  /** Interval of BOOKMARK events for watches that allow them. */
  bookmarkIntervalMs: number;
  /** Upper bound on a watch's life when the client sets no timeoutSeconds. */
  maxWatchSeconds: number;
  /** The /version document. */
  version: { major: string; minor: string; gitVersion: string };
}

interface ParsedPath {
  group: string;
  version: string;
  namespace?: string;
  resource?: string;
  name?: string;
  subresource?: string;
  legacyWatch: boolean;
}

const NOT_FOUND = (): ApiError => new ApiError(failure(404, 'NotFound', 'the server could not find the requested resource', {}));

/** Splits an API path into group/version/namespace/resource/name/subresource; undefined if not an API path. */
export function parseApiPath(pathname: string): ParsedPath | undefined {
  const segs = pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api' && segs.length >= 2) { group = ''; version = segs[1] ?? ''; rest = segs.slice(2); }
  else if (segs[0] === 'apis' && segs.length >= 3) { group = segs[1] ?? ''; version = segs[2] ?? ''; rest = segs.slice(3); }
  else return undefined;
  let legacyWatch = false;
  if (rest[0] === 'watch') { legacyWatch = true; rest = rest.slice(1); }
  const p: ParsedPath = { group, version, legacyWatch };
  const nsSub = group === '' && rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize');
  if (rest[0] === 'namespaces' && rest.length >= 3 && !nsSub) {
    p.namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length > 3) return undefined;
  p.resource = rest[0];
  p.name = rest[1];
  p.subresource = rest[2];
  return p;
}

function send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendStatus(res: ServerResponse, status: Status, headers: Record<string, string> = {}): void {
  send(res, status.code, status, headers);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const b = c as Buffer;
    size += b.length;
    if (size > 3 * 1024 * 1024) throw new ApiError(failure(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728'));
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  try { return JSON.parse(text); } catch (e) {
    throw new ApiError(failure(400, 'BadRequest', `the object provided is unrecognized: ${(e as Error).message}`));
  }
}

function warningHeader(warnings: readonly string[]): Record<string, string> {
  if (warnings.length === 0) return {};
  return { Warning: warnings.map((w) => `299 - ${JSON.stringify(w)}`).join(', ') };
}

/** The request handler plus hooks the server needs (ending watches on stop). */
export interface ApiHttp {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Ends every open watch stream. */
  endWatches(): void;
  /** Number of watch streams open now. */
  openWatches(): number;
}

/** Builds the HTTP front end over an ApiCore, appending every request to `log`. */
export function createApiHttp(core: ApiCore, log: RequestLogEntry[], opts: HttpOptions): ApiHttp {
  const watches = new Map<ServerResponse, { gr: string; end: () => void }>();
  core.onResourceRemoved = (group, plural) => {
    for (const w of [...watches.values()]) if (w.gr === grKey(group, plural)) w.end();
  };

  function discovery(req: IncomingMessage, res: ServerResponse, pathname: string, entry: RequestLogEntry): boolean {
    const reg = core.registry;
    const host = req.headers.host ?? '127.0.0.1';
    let doc: unknown;
    if (pathname === '/version') doc = { ...opts.version, gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean', buildDate: '2025-01-01T00:00:00Z', goVersion: 'go1.23.0', compiler: 'gc', platform: 'linux/amd64' };
    else if (pathname === '/api') doc = reg.apiVersions(host);
    else if (pathname === '/apis') doc = reg.apiGroupList();
    else if (/^\/(healthz|livez|readyz)$/.test(pathname)) {
      entry.code = 200;
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return true;
    } else {
      const m = /^\/apis\/([^/]+)$/.exec(pathname);
      const gv = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/.exec(pathname);
      if (m) doc = reg.apiGroup(m[1] ?? '');
      else if (gv) doc = gv[1] ? reg.apiResourceList('', gv[1]) : reg.apiResourceList(gv[2] ?? '', gv[3] ?? '');
      else if (!pathname.startsWith('/api/') && !pathname.startsWith('/apis/')) throw NOT_FOUND();
      else return false;
      if (doc === undefined) throw NOT_FOUND();
    }
    entry.code = 200;
    send(res, 200, doc);
    return true;
  }

  function watch(res: ServerResponse, rt: ResourceType, ns: string | undefined, name: string | undefined, q: URLSearchParams, entry: RequestLogEntry): void {
    const lq: ListQuery = {};
    const ls = q.get('labelSelector');
    const fsParts = [q.get('fieldSelector'), name !== undefined ? `metadata.name=${name}` : null].filter((x): x is string => !!x);
    if (ls) lq.labelSelector = ls;
    if (fsParts.length > 0) lq.fieldSelector = fsParts.join(',');
    const sel = core.selectors(rt, lq);
    const gr = grKey(rt.group, rt.plural);
    const scopeNs = rt.namespaced ? ns : undefined;
    const inScope = (o: KubeObject) => scopeNs === undefined || o.metadata.namespace === scopeNs;
    const matches = (o: KubeObject | undefined) => o !== undefined && inScope(o) && core.matches(sel, o);
    const rvText = q.get('resourceVersion') ?? '';
    const bookmarks = q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1';
    const sendInitial = q.get('sendInitialEvents') === 'true';

    entry.code = 200;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    let ended = false;
    const timers: NodeJS.Timeout[] = [];
    const emit = (type: string, object: unknown) => { if (!ended) res.write(`${JSON.stringify({ type, object })}\n`); };
    const bookmark = (annotations?: Record<string, string>) => emit('BOOKMARK', {
      kind: rt.kind, apiVersion: rt.group === '' ? rt.version : `${rt.group}/${rt.version}`,
      metadata: { resourceVersion: String(core.store.currentRevision), ...(annotations ? { annotations } : {}) },
    });
    let unsubscribe = () => {};
    const end = () => {
      if (ended) return;
      ended = true;
      unsubscribe();
      for (const t of timers) clearTimeout(t);
      watches.delete(res);
      res.end();
    };
    const onEvent = (ev: StoreEvent) => {
      if (ev.gr !== gr) return;
      const nowMatch = matches(ev.object);
      const wasMatch = matches(ev.old);
      let type: string | undefined;
      if (ev.type === 'ADDED') type = nowMatch ? 'ADDED' : undefined;
      else if (ev.type === 'DELETED') type = wasMatch || nowMatch ? 'DELETED' : undefined;
      else if (nowMatch && wasMatch) type = 'MODIFIED';
      else if (nowMatch) type = 'ADDED';
      else if (wasMatch) type = 'DELETED';
      if (type) emit(type, core.present(rt, ev.object));
    };

    if (rvText === '' || rvText === '0' || sendInitial) {
      for (const o of core.store.list(gr, scopeNs)) if (matches(o)) emit('ADDED', core.present(rt, o));
      if (sendInitial && bookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
    } else {
      const rv = Number(rvText);
      if (!Number.isInteger(rv) || rv < 0) {
        emit('ERROR', failure(400, 'BadRequest', `invalid resource version: ${rvText}`));
        end();
        return;
      }
      const events = core.store.eventsSince(rv);
      if (events === 'expired') {
        emit('ERROR', expired(rv, core.store.compacted));
        end();
        return;
      }
      for (const ev of events) onEvent(ev);
    }
    unsubscribe = core.store.subscribe(onEvent);
    watches.set(res, { gr, end });
    res.on('close', end);
    const timeout = Number(q.get('timeoutSeconds') ?? '');
    const seconds = Number.isFinite(timeout) && timeout > 0 ? Math.min(timeout, opts.maxWatchSeconds) : opts.maxWatchSeconds;
    timers.push(setTimeout(end, seconds * 1000));
    if (bookmarks && opts.bookmarkIntervalMs > 0) {
      const tick = () => { bookmark(); timers.push(setTimeout(tick, opts.bookmarkIntervalMs)); };
      timers.push(setTimeout(tick, opts.bookmarkIntervalMs));
    }
  }

  /** The ownerReferences of an existing object (undefined: it does not exist, or a subresource is written). */
  function ownerRefsOf(rt: ResourceType, ns: string | undefined, name: string, sub: string): string | undefined {
    if (sub !== '') return undefined;
    try {
      return JSON.stringify(core.get(rt, ns, name).metadata.ownerReferences ?? []);
    } catch {
      return undefined;
    }
  }

  /**
   * Authorization checks a real API server makes beyond the request's own verb, logged as
   * extra entries (same path, `authorizedFor` saying why) so RBAC checks see them:
   * - a PATCH that creates the object (server-side apply of a new object) is also
   *   authorized as `create` (the apiserver's patch handler wraps its create path in a
   *   create check);
   * - a write that changes metadata.ownerReferences needs `delete` on the object under
   *   the OwnerReferencesPermissionEnforcement admission plugin.
   */
  function authorizeSideEffects(entry: RequestLogEntry, before: string | undefined, r: WriteResult): void {
    if (r.code >= 300 || entry.subresource !== undefined) return;
    const after = JSON.stringify((r.object as KubeObject).metadata?.ownerReferences ?? []);
    if (entry.verb === 'patch' && r.code === 201) log.push({ ...entry, verb: 'create', code: r.code, authorizedFor: 'patch-creates' });
    else if (before !== undefined && before !== after) log.push({ ...entry, verb: 'delete', code: r.code, authorizedFor: 'owner-references-changed' });
  }

  async function serve(req: IncomingMessage, res: ServerResponse, entry: RequestLogEntry): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const q = url.searchParams;
    const method = (req.method ?? 'GET').toUpperCase();
    if (opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`) {
      throw new ApiError(failure(401, 'Unauthorized', 'Unauthorized'));
    }
    if (method === 'GET' && discovery(req, res, url.pathname, entry)) return;
    const p = parseApiPath(url.pathname);
    if (!p || p.resource === undefined) throw NOT_FOUND();
    entry.group = p.group;
    entry.version = p.version;
    entry.resource = p.resource;
    delete entry.nonResourceURL;
    if (p.namespace !== undefined) entry.namespace = p.namespace;
    if (p.name !== undefined) entry.name = p.name;
    if (p.subresource !== undefined) entry.subresource = p.subresource;
    const isWatch = p.legacyWatch || q.get('watch') === 'true' || q.get('watch') === '1';
    entry.verb = verbFor(method, p.name !== undefined, isWatch);
    const fm = q.get('fieldManager');
    if (fm !== null) entry.fieldManager = fm;

    const rt = core.registry.find(p.group, p.version, p.resource);
    if (!rt) throw NOT_FOUND();
    if (p.namespace !== undefined && !rt.namespaced) throw NOT_FOUND();
    const sub = p.subresource ?? '';
    if (sub !== '' && !((sub === 'status' && rt.status) || (sub === 'scale' && rt.scale))) throw NOT_FOUND();
    const ns = rt.namespaced ? p.namespace : undefined;

    const wopts: WriteOptions = { dryRun: q.getAll('dryRun').includes('All') };
    if (fm !== null) wopts.fieldManager = fm;
    if (req.headers['user-agent']) wopts.userAgent = req.headers['user-agent'];
    const fv = q.get('fieldValidation');
    if (fv !== null) wopts.fieldValidation = fv;
    const force = q.get('force');
    if (force !== null) wopts.force = force;
    const lq: ListQuery = {};
    for (const k of ['labelSelector', 'fieldSelector', 'continue'] as const) { const v = q.get(k); if (v) lq[k] = v; }
    const limit = Number(q.get('limit') ?? '');
    if (Number.isInteger(limit) && limit > 0) lq.limit = limit;

    const done = (r: { object: unknown; code: number; warnings: string[] }) => { entry.code = r.code; send(res, r.code, r.object, warningHeader(r.warnings)); };

    if (method === 'GET') {
      if (isWatch) {
        if (sub !== '') throw NOT_FOUND();
        watch(res, rt, ns, p.name, q, entry);
        return;
      }
      if (p.name === undefined) { done({ object: core.list(rt, ns, lq), code: 200, warnings: [] }); return; }
      const obj = core.get(rt, ns, p.name);
      done({ object: sub === 'scale' ? core.scaleOf(rt, obj) : obj, code: 200, warnings: [] });
      return;
    }
    if (method === 'POST') {
      if (p.name !== undefined) throw new ApiError(failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
      if (rt.namespaced && ns === undefined) throw NOT_FOUND();
      done(core.create(rt, ns, parseJsonBody(await readBody(req)), wopts));
      return;
    }
    if (method === 'PUT') {
      if (p.name === undefined) throw new ApiError(failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
      const before = ownerRefsOf(rt, ns, p.name, sub);
      const r = core.replace(rt, ns, p.name, sub, parseJsonBody(await readBody(req)), wopts);
      authorizeSideEffects(entry, before, r);
      done(r);
      return;
    }
    if (method === 'PATCH') {
      if (p.name === undefined) throw new ApiError(failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
      const ct = req.headers['content-type'] ?? '';
      entry.patchType = ct.split(';')[0]?.trim() ?? '';
      const before = ownerRefsOf(rt, ns, p.name, sub);
      const r = core.patch(rt, ns, p.name, sub, ct, await readBody(req), wopts);
      authorizeSideEffects(entry, before, r);
      done(r);
      return;
    }
    if (method === 'DELETE') {
      const body = parseJsonBody(await readBody(req));
      const b = isObj(body) ? body : {};
      const dopts = {
        propagationPolicy: q.get('propagationPolicy') ?? (typeof b.propagationPolicy === 'string' ? b.propagationPolicy : undefined),
        orphanDependents: q.has('orphanDependents') ? q.get('orphanDependents') === 'true' : typeof b.orphanDependents === 'boolean' ? b.orphanDependents : undefined,
        preconditions: isObj(b.preconditions) ? (b.preconditions as { resourceVersion?: string; uid?: string }) : undefined,
        dryRun: wopts.dryRun ?? false,
      };
      if (p.name === undefined) { done(core.deleteCollection(rt, ns, lq, dopts)); return; }
      if (sub !== '') throw new ApiError(failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
      done(core.delete(rt, ns, p.name, dopts));
      return;
    }
    throw new ApiError(failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
  }

  return {
    handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const method = (req.method ?? 'GET').toUpperCase();
      const entry: RequestLogEntry = {
        verb: method === 'GET' ? 'get' : method.toLowerCase(), group: '', version: '', resource: '',
        nonResourceURL: url.pathname, method, path: url.pathname + url.search, code: 0,
      };
      if (req.headers['user-agent']) entry.userAgent = req.headers['user-agent'];
      log.push(entry);
      serve(req, res, entry).catch((e: unknown) => {
        const status = e instanceof ApiError ? e.status : failure(500, 'InternalError', `Internal error occurred: ${(e as Error).stack ?? String(e)}`);
        entry.code = status.code;
        if (!res.headersSent) sendStatus(res, status, e instanceof ApiError ? e.headers : {});
        else res.end();
      });
    },
    endWatches() {
      for (const w of [...watches.values()]) w.end();
    },
    openWatches() {
      return watches.size;
    },
  };
}

/** The RBAC verb of a request. */
export function verbFor(method: string, named: boolean, isWatch: boolean): string {
  switch (method) {
    case 'GET': return isWatch ? 'watch' : named ? 'get' : 'list';
    case 'POST': return 'create';
    case 'PUT': return 'update';
    case 'PATCH': return 'patch';
    case 'DELETE': return named ? 'delete' : 'deletecollection';
    default: return method.toLowerCase();
  }
}
