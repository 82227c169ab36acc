// Does the live object still hold what the operator applied? The applied-hash annotation
// says what was applied last; this says whether someone changed it since (kubectl edit,
// another controller). Live objects carry more than was applied (server defaults, status,
// managedFields, fields other managers own), so the test is "desired is contained in
// live", not equality. Pure.

/**
 * The path of the first field of `desired` that `live` lacks or holds differently;
 * undefined when every desired field is present with an equal value. Objects match
 * key by key (live may have more keys); arrays must have the same length and match
 * element by element, since a list the operator applies is the whole list.
 */
export function firstDifference(desired: unknown, live: unknown, path = ''): string | undefined {
  if (desired === null || typeof desired !== 'object') {
    return desired === live ? undefined : path || '(root)';
  }
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
