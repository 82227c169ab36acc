// The Secrets the operator reads: only those its MailRelays reference (credentials, TLS
// and DKIM keys, the users file) and each MailRelay's own drain-token Secret, each read
// with a GET by name. There is no Secret informer: a cluster-wide list and watch of
// Secrets would cache every Secret of the cluster in the operator's memory (one
// unpaginated list on a big cluster OOM-kills it) and need a grant to read them all.
// The RBAC is get (and create, for the drain token) on Secrets, nothing else.
//
// A rotated, created or deleted Secret is noticed by refresh(): every refreshMs the
// referenced Secrets are read again, and a change (resourceVersion, presence) calls
// onChange so the MailRelays that use it are reconciled (a rotation changes the config
// hash and rolls the relays; a deleted drain token is created again).
import type { KubeObject } from '../desired/meta.ts';
import { RESOURCES, type RawKubeApi } from './kube.ts';

/** Options of a SecretCache. */
export interface SecretCacheOptions {
  raw: Pick<RawKubeApi, 'getRaw'>;
  /** Called when a Secret read again differs from the cached copy (created, changed, deleted). */
  onChange: (namespace: string, name: string) => void;
  /** Reports a failed refresh read (the cached copy is kept). */
  onError?: (err: unknown, namespace: string, name: string) => void;
}

const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;

/** Referenced Secrets by namespace/name: null for one that does not exist. */
export class SecretCache {
  private readonly entries = new Map<string, KubeObject | null>();

  /** Builds an empty cache. */
  constructor(private readonly opts: SecretCacheOptions) {}

  /** The cached copy; undefined when absent or never read. */
  get(namespace: string, name: string): KubeObject | undefined {
    return this.entries.get(keyOf(namespace, name)) ?? undefined;
  }

  /** Cached Secrets (those that exist) of one namespace, or all. */
  list(namespace?: string): KubeObject[] {
    return [...this.entries.values()].filter((o): o is KubeObject => o !== null && (namespace === undefined || o.metadata.namespace === namespace));
  }

  /** Reads the Secrets not cached yet (a GET each); the cached ones stay as refresh() left them. */
  async ensure(namespace: string, names: Iterable<string>): Promise<void> {
    await Promise.all([...new Set(names)].filter((n) => !this.entries.has(keyOf(namespace, n))).map((n) => this.read(namespace, n)));
  }

  /** Records a Secret the operator just wrote (the drain token it created). */
  remember(secret: KubeObject): void {
    this.entries.set(keyOf(secret.metadata.namespace ?? '', secret.metadata.name), secret);
  }

  /**
   * Reads every Secret in `wanted` (namespace/name keys) again, calling onChange for each
   * that changed, and drops cached Secrets no longer wanted. A failed read keeps the copy.
   */
  async refresh(wanted: ReadonlySet<string>): Promise<void> {
    for (const key of this.entries.keys()) if (!wanted.has(key)) this.entries.delete(key);
    await Promise.all([...wanted].map(async (key) => {
      const [namespace = '', name = ''] = key.split('/');
      const before = this.entries.get(key);
      let now: KubeObject | null;
      try {
        now = await this.read(namespace, name);
      } catch (err) {
        this.opts.onError?.(err, namespace, name);
        return;
      }
      const changed = before === undefined ? now !== null : (before?.metadata.resourceVersion ?? null) !== (now?.metadata.resourceVersion ?? null);
      if (changed) this.opts.onChange(namespace, name);
    }));
  }

  private async read(namespace: string, name: string): Promise<KubeObject | null> {
    const o = (await this.opts.raw.getRaw(RESOURCES.Secret, namespace, name)) ?? null;
    this.entries.set(keyOf(namespace, name), o);
    return o;
  }
}
