// A client-node informer (ListWatch) that does not stay dead. client-node's informer
// recovers by itself only from 410 Gone (relist) and client-side watch timeouts; any other
// error (connection refused during an API server restart, a 5xx, a failed list) stops it
// for good after calling the error handlers. Here every error restarts it after an
// exponential backoff, counted in watchRestarts{kind}; a successful list resets the backoff.
// Lists go through RawKubeApi, so the cache holds wire JSON like the watch events do.
// Watches ask for bookmarks and a server-side timeout (BookmarkWatch), as client-go's
// reflector does: a quiet watch is not cut every 30 s by client-node's inactivity timer,
// and when it does end it resumes from a recent resourceVersion instead of getting a 410
// and relisting everything.
import { ListWatch, Watch, type Informer, type KubeConfig, type ObjectCache } from '@kubernetes/client-node';
import type { KubeObject } from '../desired/meta.ts';
import type { OperatorMetrics } from '../metrics.ts';
import { collectionPath, type RawKubeApi, type ResourceKind } from './kube.ts';

/** What changed: the object now (for delete: as last seen) and, for updates, the previous copy. */
export type InformerEvent = { type: 'add' | 'delete'; object: KubeObject } | { type: 'update'; object: KubeObject; old: KubeObject | undefined };

/** Exponential backoff bounds, in milliseconds. */
export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/** Options of a ResilientInformer. */
export interface ResilientInformerOptions {
  kc: KubeConfig;
  raw: RawKubeApi;
  resource: ResourceKind;
  /** One namespace, or undefined for all. */
  namespace?: string;
  labelSelector?: string;
  /** Field selector of the list and watch (e.g. metadata.name=x: one object). */
  fieldSelector?: string;
  metrics?: Pick<OperatorMetrics, 'watchRestarts'>;
  /** Restart backoff (default 500 ms doubling to 30 s). */
  backoff?: Backoff;
  /** Reports errors that caused a restart. */
  onError?: (err: unknown, restartInMs: number) => void;
}

/** Server-side watch timeout range, in seconds (client-go: 5 to 10 minutes, spread so informers do not reconnect together). */
const WATCH_TIMEOUT_S = { min: 300, max: 600 };
/**
 * Client-side inactivity limit. The API server sends a bookmark about once a minute to a
 * watch that asked for them, so a silent minute and a half means a dead connection.
 */
const WATCH_INACTIVITY_MS = 90_000;

/** client-node's Watch, asking for bookmarks and a server-side timeout on every watch. */
export class BookmarkWatch extends Watch {
  /** Builds a Watch with the bookmark-aware inactivity limit. */
  constructor(kc: KubeConfig) {
    super(kc);
    // client-node keeps this private, with no option to set it (2.0.1).
    (this as unknown as { requestTimeoutMs: number }).requestTimeoutMs = WATCH_INACTIVITY_MS;
  }

  /** Opens the watch with allowWatchBookmarks=true and timeoutSeconds in WATCH_TIMEOUT_S. */
  override watch(path: string, queryParams: Record<string, unknown>, callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void, done: (err: unknown) => void): Promise<AbortController> {
    const timeoutSeconds = WATCH_TIMEOUT_S.min + Math.floor(Math.random() * (WATCH_TIMEOUT_S.max - WATCH_TIMEOUT_S.min));
    return super.watch(path, { ...queryParams, allowWatchBookmarks: true, timeoutSeconds }, callback, done);
  }
}

const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** A cache of one kind, kept current by list+watch, restarted on any error. */
export class ResilientInformer {
  private readonly informer: Informer<KubeObject> & ObjectCache<KubeObject>;
  private readonly handlers: ((e: InformerEvent) => void)[] = [];
  /** Last seen copy per key, so update handlers get the old object (client-node passes only the new one). */
  private readonly seen = new Map<string, KubeObject>();
  private readonly backoff: Backoff;
  private delayMs: number;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private hasSynced = false;
  private readonly syncWaiters: (() => void)[] = [];

  /** Builds a stopped informer; call start(). */
  constructor(private readonly opts: ResilientInformerOptions) {
    this.backoff = opts.backoff ?? { initialMs: 500, maxMs: 30_000 };
    this.delayMs = this.backoff.initialMs;
    const listFn = async () => {
      const list = await opts.raw.listRaw(opts.resource, opts.namespace, opts.labelSelector, opts.fieldSelector);
      this.delayMs = this.backoff.initialMs;
      this.markSynced();
      return list;
    };
    this.informer = new ListWatch<KubeObject>(collectionPath(opts.resource, opts.namespace), new BookmarkWatch(opts.kc), listFn, false, opts.labelSelector, opts.fieldSelector);
    this.informer.on('add', (o) => this.emit({ type: 'add', object: o }));
    this.informer.on('update', (o) => this.emit({ type: 'update', object: o, old: this.seen.get(keyOf(o)) }));
    this.informer.on('delete', (o) => this.emit({ type: 'delete', object: o }));
    this.informer.on('error', (err: unknown) => this.restartLater(err));
  }

  /** The kind this informer caches. */
  get resource(): ResourceKind {
    return this.opts.resource;
  }

  /** True once the first list has succeeded. */
  get synced(): boolean {
    return this.hasSynced;
  }

  /** Registers a change handler (called after the cache is updated). */
  onEvent(handler: (e: InformerEvent) => void): void {
    this.handlers.push(handler);
  }

  /** Starts listing and watching; resolves after the first attempt (not necessarily a successful one: see waitForSync). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.informer.start();
  }

  /** Stops watching and cancels a pending restart. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.informer.stop();
  }

  /** Resolves once the cache has been filled by a successful list. */
  waitForSync(): Promise<void> {
    if (this.hasSynced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  /** The cached object, or undefined. */
  get(namespace: string, name: string): KubeObject | undefined {
    return this.informer.get(name, namespace);
  }

  /** Cached objects of one namespace, or of all when undefined. */
  list(namespace?: string): KubeObject[] {
    return [...this.informer.list(namespace)];
  }

  private markSynced(): void {
    if (this.hasSynced) return;
    this.hasSynced = true;
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private emit(e: InformerEvent): void {
    const key = keyOf(e.object);
    if (e.type === 'delete') this.seen.delete(key);
    else this.seen.set(key, e.object);
    for (const h of this.handlers) h(e);
  }

  private restartLater(err: unknown): void {
    if (!this.running || this.timer) return;
    const delay = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, this.backoff.maxMs);
    this.opts.metrics?.watchRestarts.inc({ kind: this.opts.resource.kind });
    this.opts.onError?.(err, delay);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.running) void this.informer.start();
    }, delay);
  }
}
