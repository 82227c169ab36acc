// Does the live object still hold what the operator applied? The applied-hash annotation
// says what was applied last; this says whether someone changed it since (kubectl edit,
// another controller). Live objects carry more than was applied (server defaults, status,
// managedFields, fields other managers own), so the test is "desired is contained in
// live", not equality. Pure.

import { parseQuantity } from '../api/quantity.ts';

/**
 * Fields whose values the API server canonicalises as resource.Quantity ("0.5" is stored
 * as "500m", "1.5Gi" as "1536Mi", 1 as "1"): container and claim requests/limits,
 * emptyDir.sizeLimit, matched on the path's tail.
 */
const QUANTITY_PATH = /(^|\.)(requests|limits)\.[^.[\]]+$|(^|\.)sizeLimit$/;

/** Equal as quantities: both parse, and to the same value (within rounding of the decimal forms). */
function sameQuantity(desired: unknown, live: unknown): boolean {
  if ((typeof desired !== 'string' && typeof desired !== 'number') || (typeof live !== 'string' && typeof live !== 'number')) return false;
  const a = parseQuantity(String(desired));
  const b = parseQuantity(String(live));
  if (a === null || b === null) return false;
  return a === b || Math.abs(a - b) <= Math.abs(a) * 1e-12;
}

/** An empty list or map: the API server omits these (omitempty), so live lacks the field. */
const isEmptyCollection = (v: unknown) => (Array.isArray(v) && v.length === 0)
  || (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0);

/**
 * The path of the first field of `desired` that `live` lacks or holds differently;
 * undefined when every desired field is present with an equal value. Objects match
 * key by key (live may have more keys); arrays must have the same length and match
 * element by element, since a list the operator applies is the whole list. Two things
 * the real API server does to what it stores count as equal (else every comparison with
 * a live object fails and a no-op apply goes out after every status change): quantities
 * are compared by value at QUANTITY_PATH, and an empty desired list or map matches an
 * absent field.
 */
export function firstDifference(desired: unknown, live: unknown, path = ''): string | undefined {
  if (desired === null || typeof desired !== 'object') {
    if (desired === live) return undefined;
    if (QUANTITY_PATH.test(path) && sameQuantity(desired, live)) return undefined;
    return path || '(root)';
  }
  if (live === undefined && isEmptyCollection(desired)) return undefined;
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length !== desired.length) return path || '(root)';
    for (let i = 0; i < desired.length; i++) {
      const d = firstDifference(desired[i], live[i], `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (live === null || typeof live !== 'object' || Array.isArray(live)) return path || '(root)';
  const l = live as Record<string, unknown>;
  for (const [k, v] of Object.entries(desired as Record<string, unknown>)) {
    if (v === undefined) continue;
    const d = firstDifference(v, l[k], path ? `${path}.${k}` : k);
    if (d !== undefined) return d;
  }
  return undefined;
}

/** True when every field of `desired` is in `live` with an equal value (see firstDifference). */
export function isContainedIn(desired: unknown, live: unknown): boolean {
  return firstDifference(desired, live) === undefined;
}
