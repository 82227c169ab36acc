// Test support: the CRD schema as a JSON Schema ajv can check manifests against, with
// unknown fields rejected (the API server prunes or, with strict field validation,
// rejects them; in an example they are always a mistake).
import type { JsonSchema } from '../../operator/api/json-schema.ts';

/** A copy of a structural schema in which objects with properties reject other keys. */
export function closedSchema(node: JsonSchema): JsonSchema {
  const out: JsonSchema = { ...node };
  if (out['x-kubernetes-preserve-unknown-fields'] === true) return out;
  if (out.properties) {
    // ObjectMeta: the CRD may only constrain name there; everything else of it is allowed.
    out.properties = Object.fromEntries(Object.entries(out.properties).map(([k, v]) => [k, k === 'metadata' && node.properties?.spec ? v : closedSchema(v)]));
    out.additionalProperties = false;
  }
  if (out.items) out.items = closedSchema(out.items);
  if (typeof out.additionalProperties === 'object') out.additionalProperties = closedSchema(out.additionalProperties);
  return out;
}
