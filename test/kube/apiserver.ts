// A test Kubernetes API server: real HTTP on 127.0.0.1, driven by the real
// @kubernetes/client-node through a kubeconfig. See test/kube/README.md.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify as toYaml } from 'yaml';
import { createApiHttp } from './http.ts';
import { execWebSocketServer, handleExecUpgrade, type ExecHandler } from './exec.ts';
import type { ApiHttp } from './http.ts';
import { ApiCore } from './operations.ts';
import type { WriteOptions } from './operations.ts';
import type { ResourceType } from './registry.ts';
import { grKey } from './store.ts';
import { apiVersionOf, clone } from './types.ts';
import type { KubeObject, RequestLogEntry } from './types.ts';

/** Options of startApiServer(). */
export interface ApiServerOptions {
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** Watch history window, in events (default 1000). */
  historySize?: number;
  /** Run the garbage collector (default true). */
  gc?: boolean;
  /** Require this bearer token (default: no auth). */
  token?: string;
  /** BOOKMARK interval for watches with allowWatchBookmarks (default 1000 ms; 0 disables). */
  bookmarkIntervalMs?: number;
  /** Longest watch when the client sets no timeoutSeconds (default 1800 s). */
  maxWatchSeconds?: number;
  /** Namespace the kubeconfig context uses (default "default"). */
  namespace?: string;
}

/** A running (or stopped, restartable) test API server. */
export class ApiServer {
  /** Every request served, in order, in RBAC terms. */
  readonly requestLog: RequestLogEntry[] = [];
  /** The object semantics behind the HTTP layer (for white-box tests). */
  readonly core: ApiCore;
  private readonly http: ApiHttp;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private boundPort = 0;
  private execHandler: ExecHandler | undefined;
  private readonly execWss = execWebSocketServer();

  /** Builds a stopped server; call start(). */
  constructor(private readonly opts: ApiServerOptions = {}) {
    this.core = new ApiCore({ historySize: opts.historySize ?? 1000, gc: opts.gc ?? true });
    const httpOpts: Parameters<typeof createApiHttp>[2] = {
      bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 1000,
      maxWatchSeconds: opts.maxWatchSeconds ?? 1800,
      version: { major: '1', minor: '31', gitVersion: 'v1.31.0-mailrelay-test' },
    };
    if (opts.token !== undefined) httpOpts.token = opts.token;
    this.http = createApiHttp(this.core, this.requestLog, httpOpts);
    this.boundPort = opts.port ?? 0;
  }

  /** Serves pods/exec (the WebSocket remote-command protocol) by running what the handler starts: the test's kubelet. */
  onExec(handler: ExecHandler): void {
    this.execHandler = handler;
  }

  /** The port listened on (kept across stop/start). */
  get port(): number {
    return this.boundPort;
  }

  /** Base URL, http://127.0.0.1:PORT. */
  get url(): string {
    return `http://127.0.0.1:${this.boundPort}`;
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return this.server !== undefined;
  }

  /** Starts listening (again, on the same port after a stop()). Stored objects are kept. */
  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => this.http.handle(req, res));
    server.keepAliveTimeout = 5000;
    server.on('upgrade', (req, socket, head: Buffer) => {
      if (!handleExecUpgrade(this.execWss, this.execHandler, this.requestLog, this.opts.token, req, socket, head)) {
        socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      }
    });
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    if (addr && typeof addr === 'object') this.boundPort = addr.port;
    this.server = server;
  }

  /** Stops listening and cuts every connection, open watches included (an API server restart). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    this.http.endWatches();
    for (const s of this.sockets) s.destroy();
    server.closeAllConnections();
    await closed;
  }

  /** stop() for good (alias kept for symmetry with other test servers). */
  async close(): Promise<void> {
    await this.stop();
  }

  /** Drops the watch history: watches from any older resourceVersion now get 410 Gone. */
  compact(): void {
    this.core.store.compact();
  }

  /** Ends every open watch cleanly (as a real server does when a watch times out); clients re-watch. */
  endWatches(): void {
    this.http.endWatches();
  }

  /** Number of watch streams open now. */
  openWatches(): number {
    return this.http.openWatches();
  }

  /** A KubeConfig pointing at this server over plain HTTP. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'test', server: this.url, skipTLSVerify: true }],
      users: [this.opts.token !== undefined ? { name: 'test', token: this.opts.token } : { name: 'test' }],
      contexts: [{ name: 'test', cluster: 'test', user: 'test', namespace: this.opts.namespace ?? 'default' }],
      currentContext: 'test',
    });
    return kc;
  }

  /** Writes a kubeconfig file for a child process (KUBECONFIG=path); returns its path. */
  writeKubeconfig(dir: string = mkdtempSync(join(tmpdir(), 'kube-test-'))): string {
    const user: Record<string, unknown> = this.opts.token !== undefined ? { token: this.opts.token } : {};
    const doc = {
      apiVersion: 'v1', kind: 'Config', 'current-context': 'test', preferences: {},
      clusters: [{ name: 'test', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'test', user }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'test', namespace: this.opts.namespace ?? 'default' } }],
    };
    const path = join(dir, 'kubeconfig');
    writeFileSync(path, toYaml(doc), { mode: 0o600 });
    return path;
  }

  /** The served resource type for group/version/resource, or throws. */
  resourceType(group: string, version: string, resource: string): ResourceType {
    const rt = this.core.registry.find(group, version, resource);
    if (!rt) throw new Error(`resource ${apiVersionOf(group, version)} ${resource} is not served`);
    return rt;
  }

  /** Direct store read of one object as served at that version (undefined if absent). */
  get(group: string, version: string, resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const rt = this.resourceType(group, version, resource);
    const o = this.core.store.get(grKey(group, resource), rt.namespaced ? namespace : undefined, name);
    return o ? this.core.present(rt, o) : undefined;
  }

  /** Direct store list (one namespace, or all when undefined). */
  list(group: string, version: string, resource: string, namespace?: string): KubeObject[] {
    const rt = this.resourceType(group, version, resource);
    return this.core.store.list(grKey(group, resource), rt.namespaced ? namespace : undefined).map((o) => this.core.present(rt, o));
  }

  /** Creates an object bypassing HTTP (same validation and semantics), e.g. to seed state. */
  create(obj: KubeObject, opts: WriteOptions = { fieldManager: 'test-seed' }): KubeObject {
    const apiVersion = obj.apiVersion ?? 'v1';
    const rt = this.core.registry.all().find((r) => apiVersionOf(r.group, r.version) === apiVersion && r.kind === obj.kind);
    if (!rt) throw new Error(`kind ${apiVersion} ${String(obj.kind)} is not served`);
    return this.core.create(rt, obj.metadata.namespace, clone(obj), opts).object as KubeObject;
  }

  /** The latest resourceVersion written (the etcd revision). */
  get resourceVersion(): number {
    return this.core.store.currentRevision;
  }
}

/** Starts a test API server on 127.0.0.1 (port 0 by default). */
export async function startApiServer(opts: ApiServerOptions = {}): Promise<ApiServer> {
  const s = new ApiServer(opts);
  await s.start();
  return s;
}
