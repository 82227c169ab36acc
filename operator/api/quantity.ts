// Kubernetes resource quantities ("25Mi", "10Gi", "1.5G", "1e3"): the grammar of
// k8s.io/apimachinery's resource.Quantity, as the pattern its OpenAPI schema publishes.

/** The schema pattern for a quantity (identical to the one Kubernetes publishes for resource.Quantity). */
export const QUANTITY_PATTERN =
  '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';

const WHOLE = new RegExp(QUANTITY_PATTERN);
const SUFFIX: Readonly<Record<string, number>> = {
  '': 1,
  n: 1e-9, u: 1e-6, m: 1e-3,
  k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** Parses a quantity into base units (bytes for sizes); null if the text is not a quantity. */
export function parseQuantity(text: string): number | null {
  if (!WHOLE.test(text)) return null;
  const m = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$/.exec(text);
  if (!m) return null;
  const number = Number(m[1]);
  const suffix = m[2] ?? '';
  if (/^[eE]/.test(suffix)) return number * 10 ** Number(suffix.slice(1));
  const factor = SUFFIX[suffix];
  return factor === undefined ? null : number * factor;
}
