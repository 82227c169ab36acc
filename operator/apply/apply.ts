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

/** Applies children with server-side apply, skipping the ones that would not change. */
export class Applier {
  /** `api` sends the PATCHes; `metrics.writes` counts them. */
  constructor(private readonly api: KubernetesObjectApi, private readonly metrics?: Pick<OperatorMetrics, 'writes'>) {}

  /**
   * Applies `desired` unless `live` (the informer's copy, or a fresh GET; undefined when
   * absent) already matches. Throws ApplyError; throws the signal's reason, without
   * writing, once `signal` is aborted (leadership lost, shutdown).
   */
  async apply(desired: KubeObject, live: KubeObject | undefined, signal?: AbortSignal): Promise<ApplyResult> {
    const target = withAppliedHash(desired);
    if (live && isUpToDate(target, live)) {
      this.metrics?.writes.inc({ result: 'unchanged' });
      return { outcome: 'unchanged', object: live };
    }
    signal?.throwIfAborted();
    try {
      const sent = await this.api.patch(toClientModel(target), undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
      this.metrics?.writes.inc({ result: 'applied' });
      return { outcome: 'applied', object: toWire(sent) };
    } catch (err) {
      this.metrics?.writes.inc({ result: 'error' });
      throw new ApplyError(target, err);
    }
  }
}
