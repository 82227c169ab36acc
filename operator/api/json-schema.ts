// zod schema -> Kubernetes structural OpenAPI v3 schema. zod's JSON Schema output is
// close; this pass removes what a structural schema forbids (additionalProperties next
// to properties, propertyNames, anyOf with types) and what is noise (the ±2^53 bounds
// zod puts on every integer), and orders keys so the generated CRD diffs cleanly.
import { z } from 'zod';
import { MailRelaySpecSchema, MailRelayStatusSchema } from './schema.ts';

/** A node of an OpenAPI v3 schema (the subset the CRD uses). */
export interface JsonSchema {
  type?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  required?: string[];
  anyOf?: JsonSchema[];
  [keyword: string]: unknown;
}

const KEY_ORDER = [
  'type', 'description', 'format', 'enum', 'default', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern',
  'minItems', 'maxItems', 'anyOf', 'items', 'properties', 'required', 'additionalProperties',
];

function ordered(node: JsonSchema): JsonSchema {
  const keys = Object.keys(node).sort((a, b) => {
    const ia = KEY_ORDER.indexOf(a), ib = KEY_ORDER.indexOf(b);
    return (ia < 0 ? KEY_ORDER.length : ia) - (ib < 0 ? KEY_ORDER.length : ib) || a.localeCompare(b);
  });
  return Object.fromEntries(keys.map((k) => [k, node[k]]));
}

/** Rewrites one zod-emitted node (and its children) into structural form. */
export function structural(input: JsonSchema): JsonSchema {
  const node: JsonSchema = { ...input };
  delete node.$schema;
  delete node.propertyNames;
  if (node.type === 'integer' || node.type === 'number') {
    if (node.minimum === Number.MIN_SAFE_INTEGER) delete node.minimum;
    if (node.maximum === Number.MAX_SAFE_INTEGER) delete node.maximum;
  }
  if (node['x-kubernetes-int-or-string'] === true) {
    // Structural schemas allow exactly anyOf [{type: integer}, {type: string}] here;
    // a pattern at the node applies to the string form only (as Kubernetes' Quantity does).
    const pattern = node.anyOf?.find((b) => b.type === 'string')?.pattern;
    delete node.type;
    node.anyOf = [{ type: 'integer' }, { type: 'string' }];
    if (typeof pattern === 'string') node.pattern = pattern;
    return ordered(node);
  }
  if (node['x-kubernetes-preserve-unknown-fields'] === true) {
    delete node.properties;
    delete node.additionalProperties;
    node.type ??= 'object';
    return ordered(node);
  }
  if (node.additionalProperties === false) delete node.additionalProperties;
  if (node.properties) {
    if (Object.keys(node.properties).length === 0) delete node.properties;
    else node.properties = Object.fromEntries(Object.entries(node.properties).map(([k, v]) => [k, structural(v)]));
  }
  if (node.items) node.items = structural(node.items);
  if (typeof node.additionalProperties === 'object') node.additionalProperties = structural(node.additionalProperties);
  return ordered(node);
}

/** The structural schema of any zod schema (input form: defaulted fields optional, defaults shown). */
export function toStructural(schema: z.ZodType): JsonSchema {
  return structural(z.toJSONSchema(schema, { io: 'input', target: 'openapi-3.0' }) as JsonSchema);
}

let specCache: JsonSchema | undefined;
/** The structural schema of MailRelay.spec (computed once). */
export function specJsonSchema(): JsonSchema {
  specCache ??= toStructural(MailRelaySpecSchema);
  return specCache;
}

/** The structural schema of MailRelay.status. */
export function statusJsonSchema(): JsonSchema {
  return toStructural(MailRelayStatusSchema);
}
