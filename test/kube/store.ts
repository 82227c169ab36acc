// The object store: every object by group/resource, namespace and name; one global,
// monotonically increasing resourceVersion (as etcd's revision); a bounded history
// of change events for watches, which compact() can drop to force 410 Gone.
import { clone } from './types.ts';
import type { KubeObject } from './types.ts';

/** One change, as a watch would see it. */
export interface StoreEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** The revision this change was written at. */
  rv: number;
  /** "group/resource", e.g. "apps/statefulsets" or "/configmaps". */
  gr: string;
  object: KubeObject;
  /** The previous state (MODIFIED, DELETED). */
  old?: KubeObject;
}

/** Receives every committed change. */
export type StoreListener = (ev: StoreEvent) => void;

/** Key of a group/resource pair in the store. */
export function grKey(group: string, resource: string): string {
  return `${group}/${resource}`;
}

function objKey(ns: string | undefined, name: string): string {
  return `${ns ?? ''}/${name}`;
}

/** In-memory storage with revisions, history and change listeners. */
export class Store {
  private revision = 0;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private history: StoreEvent[] = [];
  private compactedRevision = 0;
  private readonly listeners = new Set<StoreListener>();

  /** `historySize` bounds how many past events watches can resume from. */
  constructor(private readonly historySize = 1000) {}

  /** The latest revision written. */
  get currentRevision(): number {
    return this.revision;
  }

  /** Revisions at or below this are no longer in the watch history. */
  get compacted(): number {
    return this.compactedRevision;
  }

  /** A copy of one stored object. */
  get(gr: string, ns: string | undefined, name: string): KubeObject | undefined {
    const o = this.objects.get(gr)?.get(objKey(ns, name));
    return o ? clone(o) : undefined;
  }

  /** Copies of stored objects of a group/resource (one namespace, or all), in key order. */
  list(gr: string, ns?: string): KubeObject[] {
    const m = this.objects.get(gr);
    if (!m) return [];
    const keys = [...m.keys()].filter((k) => ns === undefined || k.startsWith(`${ns}/`)).sort();
    return keys.map((k) => clone(m.get(k) as KubeObject));
  }

  /** Every group/resource that has objects. */
  groupResources(): string[] {
    return [...this.objects.keys()].filter((k) => (this.objects.get(k)?.size ?? 0) > 0);
  }

  /** Writes a new object at the next revision and returns the stored copy. */
  create(gr: string, obj: KubeObject): KubeObject {
    const stored = clone(obj);
    stored.metadata.resourceVersion = String(++this.revision);
    let m = this.objects.get(gr);
    if (!m) { m = new Map(); this.objects.set(gr, m); }
    m.set(objKey(stored.metadata.namespace, stored.metadata.name ?? ''), stored);
    this.emit({ type: 'ADDED', rv: this.revision, gr, object: clone(stored) });
    return clone(stored);
  }

  /** Replaces an existing object at the next revision and returns the stored copy. */
  update(gr: string, obj: KubeObject): KubeObject {
    const key = objKey(obj.metadata.namespace, obj.metadata.name ?? '');
    const m = this.objects.get(gr);
    const old = m?.get(key);
    if (!m || !old) throw new Error(`update of missing object ${gr} ${key}`);
    const stored = clone(obj);
    stored.metadata.resourceVersion = String(++this.revision);
    m.set(key, stored);
    this.emit({ type: 'MODIFIED', rv: this.revision, gr, object: clone(stored), old: clone(old) });
    return clone(stored);
  }

  /** Removes an object; the DELETED event carries the deletion revision. */
  remove(gr: string, ns: string | undefined, name: string): KubeObject | undefined {
    const m = this.objects.get(gr);
    const key = objKey(ns, name);
    const old = m?.get(key);
    if (!m || !old) return undefined;
    m.delete(key);
    const gone = clone(old);
    gone.metadata.resourceVersion = String(++this.revision);
    this.emit({ type: 'DELETED', rv: this.revision, gr, object: clone(gone), old: clone(old) });
    return gone;
  }

  /** Events after `rv` still in history, or 'expired' when some may have been dropped. */
  eventsSince(rv: number): StoreEvent[] | 'expired' {
    if (rv < this.compactedRevision) return 'expired';
    return this.history.filter((e) => e.rv > rv).map((e) => ({ ...e, object: clone(e.object), old: e.old ? clone(e.old) : undefined }));
  }

  /** Drops the whole watch history (as etcd compaction): older resourceVersions now get 410. */
  compact(): void {
    this.history = [];
    this.compactedRevision = this.revision;
  }

  /** Registers a listener; returns the function that removes it. */
  subscribe(l: StoreListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private emit(ev: StoreEvent): void {
    this.history.push(ev);
    while (this.history.length > this.historySize) {
      const dropped = this.history.shift();
      if (dropped) this.compactedRevision = dropped.rv;
    }
    for (const l of [...this.listeners]) l(ev);
  }
}
