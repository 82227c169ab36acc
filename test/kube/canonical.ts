// What the real API server does to a built-in object before it stores it, beyond
// defaults: resource.Quantity values are re-written in canonical form ("0.5" -> "500m",
// "1.5Gi" -> "1536Mi", "2048Mi" -> "2Gi"), and empty lists and empty maps are dropped
// (Go's omitempty). Found by test/cluster/differential.test.ts; the operator's "already up
// to date" check has to live with both (operator/apply/compare.ts). Pure.
import { isObj, type Obj } from './types.ts';

const DECIMAL: [string, number][] = [['E', 18], ['P', 15], ['T', 12], ['G', 9], ['M', 6], ['k', 3], ['', 0], ['m', -3], ['u', -6], ['n', -9]];
const BINARY: [string, number][] = [['Ei', 60], ['Pi', 50], ['Ti', 40], ['Gi', 30], ['Mi', 20], ['Ki', 10]];
const SUFFIX_VALUE: Record<string, number> = Object.fromEntries([...DECIMAL.map(([s, e]) => [s, 10 ** e]), ...BINARY.map(([s, e]) => [s, 2 ** e])]);

/** The canonical text of a quantity (k8s.io/apimachinery resource.Quantity.String()); the input when it does not parse. */
export function canonicalQuantity(text: string | number): string | number {
  const m = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/.exec(String(text));
  if (!m) return text;
  const suffix = m[2] ?? '';
  const value = /^[eE]/.test(suffix) ? Number(m[1]) * 10 ** Number(suffix.slice(1)) : Number(m[1]) * (SUFFIX_VALUE[suffix] ?? 1);
  if (value === 0) return '0';
  if (suffix.endsWith('i') && Number.isInteger(value)) {
    for (const [s, e] of BINARY) if (value % 2 ** e === 0) return `${value / 2 ** e}${s}`;
    return String(value);
  }
  // Decimal SI: the largest suffix that keeps the number whole (to nano precision).
  const nanos = Math.round(value * 1e9);
  for (const [s, e] of DECIMAL) {
    const unit = 10 ** (e + 9);
    if (nanos % unit === 0) return `${nanos / unit}${s}`;
  }
  return text;
}

const QUANTITY_MAPS = new Set(['requests', 'limits', 'capacity', 'allocatable', 'hard']);
/** Map-typed fields (omitempty): an empty one is dropped. Struct fields (emptyDir: {}, podSelector: {}) are kept. */
const MAP_FIELDS = new Set(['labels', 'annotations', 'nodeSelector', 'data', 'binaryData', 'stringData', 'matchLabels']);

/** Canonicalises a built-in object in place (see the file comment). */
export function canonicalizeBuiltin(obj: Obj): void {
  for (const [k, v] of Object.entries(obj)) {
    if (Array.isArray(v)) {
      if (v.length === 0) { delete obj[k]; continue; }
      for (const item of v) if (isObj(item)) canonicalizeBuiltin(item);
    } else if (isObj(v)) {
      if (Object.keys(v).length === 0 && MAP_FIELDS.has(k)) { delete obj[k]; continue; }
      if (QUANTITY_MAPS.has(k)) {
        for (const [name, q] of Object.entries(v)) if (typeof q === 'string' || typeof q === 'number') v[name] = canonicalQuantity(q);
      }
      canonicalizeBuiltin(v);
    } else if (k === 'sizeLimit' && (typeof v === 'string' || typeof v === 'number')) {
      obj[k] = canonicalQuantity(v);
    }
  }
}
