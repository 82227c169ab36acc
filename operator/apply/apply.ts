// Server-side apply of the operator's children: one fieldManager, force (the operator
// owns what it applies; a conflicting manager loses those fields, as the SSA docs
// recommend for controllers), and no PATCH at all when the live object already carries
// the same applied-hash and still holds every applied field. Counts writes{result}.
import { ApiException, PatchStrategy, dumpYaml, type KubernetesObjectApi } from '@kubernetes/client-node';
import { parse } from 'yaml';
import type { KubeObject } from '../desired/meta.ts';
import type { OperatorMetrics } from '../metrics.ts';
import { isContainedIn } from './compare.ts';
import { APPLIED_HASH_ANNOTATION, withAppliedHash } from './hash.ts';
import { toClientModel } from './model.ts';

/** The one field manager of every write the operator makes. */
export const FIELD_MANAGER = 'mailrelay-operator';

/** applied: a PATCH was sent; unchanged: skipped, the live object already matches. */
export type ApplyOutcome = 'applied' | 'unchanged';

/** What apply() did, and the object as it is now (the PATCH response, or the live copy when skipped). */
export interface ApplyResult {
  outcome: ApplyOutcome;
  object: KubeObject;
}

/** The Status message of an API error, or the error's own message. */
export function apiErrorMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    let status: unknown = body;
    if (typeof body === 'string') {
      try { status = JSON.parse(body); } catch { status = { message: body }; }
    }
    const message = status && typeof status === 'object' && 'message' in status ? String((status).message) : `HTTP ${err.code}`;
    return `${err.code}: ${message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** An apply that failed: names the object; `code` is the HTTP status when the API server answered. */
export class ApplyError extends Error {
  /** HTTP status of the failed request, if the API server answered. */
  readonly code?: number;
  /** Wraps the cause with the object's kind and name. */
  constructor(readonly object: KubeObject, cause: unknown) {
    super(`apply ${object.kind} ${object.metadata.namespace ?? ''}/${object.metadata.name}: ${apiErrorMessage(cause)}`, { cause });
    this.name = 'ApplyError';
    if (cause instanceof ApiException) this.code = cause.code;
  }
}

/** True when `live` already is what applying `target` (which carries its applied-hash) would make it. */
export function isUpToDate(target: KubeObject, live: KubeObject | undefined): boolean {
  if (!live || live.metadata.deletionTimestamp) return false;
  const want = target.metadata.annotations?.[APPLIED_HASH_ANNOTATION];
  if (want === undefined || live.metadata.annotations?.[APPLIED_HASH_ANNOTATION] !== want) return false;
  return isContainedIn(target, live);
}

/** A client-node model object back in wire form. */
export function toWire(model: unknown): KubeObject {
  return parse(dumpYaml(model)) as KubeObject;
}

/** What the last apply of one object was decided on. */
interface AppliedRecord {
  /** resourceVersion of the live copy the decision was made on; '' when there was none (a create). */
  before: string;
  /** applied-hash of what was sent. */
  hash: string;
}

const MAX_RECORDS = 10_000;
const keyOf = (o: KubeObject) => `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** Applies children with server-side apply, skipping the ones that would not change. */
export class Applier {
  /**
   * The last apply per object. An informer's copy lags behind our own writes; a reconcile
   * that runs before the watch event arrives still sees the copy the previous apply was
   * decided on (same resourceVersion). That copy says nothing new: if the target is what
   * was applied then, the write is skipped. Any other resourceVersion (someone changed the
   * object since) is judged on its own. A create is remembered too (the cache has no copy
   * yet); the controller calls forget() when the informer sees the object deleted, so a
   * deleted child is created again.
   */
  private readonly records = new Map<string, AppliedRecord>();

  /** `api` sends the PATCHes; `metrics.writes` counts them. */
  constructor(private readonly api: KubernetesObjectApi, private readonly metrics?: Pick<OperatorMetrics, 'writes'>) {}

  /**
   * Applies `desired` unless `live` (the informer's copy, or with `fresh` a GET just made;
   * undefined when absent) already matches. Throws ApplyError; throws the signal's reason,
   * without writing, once `signal` is aborted (leadership lost, shutdown).
   */
  async apply(desired: KubeObject, live: KubeObject | undefined, opts: { signal?: AbortSignal; fresh?: boolean } = {}): Promise<ApplyResult> {
    const { signal } = opts;
    const target = withAppliedHash(desired);
    const key = keyOf(target);
    const hash = target.metadata.annotations?.[APPLIED_HASH_ANNOTATION] ?? '';
    const record = this.records.get(key);
    const staleCopyOfOurWrite = !opts.fresh && record !== undefined && record.hash === hash && (live?.metadata.resourceVersion ?? '') === record.before;
    if (staleCopyOfOurWrite || (live && isUpToDate(target, live))) {
      this.metrics?.writes.inc({ result: 'unchanged' });
      return { outcome: 'unchanged', object: live ?? target };
    }
    signal?.throwIfAborted();
    try {
      const sent = toWire(await this.api.patch(toClientModel(target), undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply));
      this.metrics?.writes.inc({ result: 'applied' });
      this.records.delete(key);
      if (this.records.size >= MAX_RECORDS) this.records.delete(this.records.keys().next().value ?? '');
      this.records.set(key, { before: live?.metadata.resourceVersion ?? '', hash });
      return { outcome: 'applied', object: sent };
    } catch (err) {
      this.metrics?.writes.inc({ result: 'error' });
      this.records.delete(key);
      throw new ApplyError(target, err);
    }
  }

  /** Forgets the last apply of an object (its informer saw it deleted). */
  forget(obj: Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'>): void {
    this.records.delete(keyOf(obj));
  }
}
