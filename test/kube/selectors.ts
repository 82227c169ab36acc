// Label and field selectors: parsing the query-string forms, matching objects,
// and turning a metav1.LabelSelector into its string form (Scale.status.selector).
import { badRequest } from './status.ts';
import { getPath, isObj } from './types.ts';
import type { KubeObject } from './types.ts';

/** One parsed label requirement. */
export interface LabelRequirement {
  key: string;
  op: 'eq' | 'neq' | 'in' | 'notin' | 'exists' | '!exists';
  values: string[];
}

/** One parsed field requirement. */
export interface FieldRequirement {
  field: string;
  op: 'eq' | 'neq';
  value: string;
}

const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** Splits on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) { out.push(cur); cur = ''; continue; }
    cur += ch;
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter((x) => x !== '');
}

/** Parses a labelSelector query value; throws a 400 ApiError on bad syntax. */
export function parseLabelSelector(text: string): LabelRequirement[] {
  const reqs: LabelRequirement[] = [];
  for (const part of splitTop(text)) {
    let m: RegExpExecArray | null;
    let req: LabelRequirement;
    if ((m = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(part))) {
      const values = (m[3] ?? '').split(',').map((v) => v.trim()).filter((v) => v !== '');
      req = { key: m[1] ?? '', op: m[2] === 'in' ? 'in' : 'notin', values };
    } else if ((m = /^([^=!\s]+)\s*(==|!=|=)\s*(\S*)$/.exec(part))) {
      req = { key: m[1] ?? '', op: m[2] === '!=' ? 'neq' : 'eq', values: [m[3] ?? ''] };
    } else if ((m = /^!\s*(\S+)$/.exec(part))) {
      req = { key: m[1] ?? '', op: '!exists', values: [] };
    } else if (/^\S+$/.test(part)) {
      req = { key: part, op: 'exists', values: [] };
    } else {
      throw badRequest(`unable to parse requirement: found '${part}', expected: identifier`);
    }
    if (!KEY.test(req.key)) throw badRequest(`unable to parse requirement: invalid label key "${req.key}"`);
    for (const v of req.values) {
      if (!VALUE.test(v) || v.length > 63) throw badRequest(`unable to parse requirement: invalid label value: "${v}"`);
    }
    reqs.push(req);
  }
  return reqs;
}

/** True when the labels satisfy every requirement. */
export function matchLabels(reqs: readonly LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case 'eq': return has && v === r.values[0];
      case 'neq': return !has || v !== r.values[0];
      case 'in': return has && r.values.includes(v ?? '');
      case 'notin': return !has || !r.values.includes(v ?? '');
      case 'exists': return has;
      case '!exists': return !has;
    }
    return false;
  });
}

/**
 * Parses a fieldSelector value; `allowed` lists the field paths the resource supports
 * (metadata.name and metadata.namespace are always allowed); throws 400 otherwise.
 */
export function parseFieldSelector(text: string, allowed: readonly string[] = []): FieldRequirement[] {
  const reqs: FieldRequirement[] = [];
  for (const part of splitTop(text)) {
    const m = /^([^=!]+?)\s*(==|!=|=)\s*(.*)$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${text}'; can't understand '${part}'`);
    const field = (m[1] ?? '').trim();
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && !allowed.includes(field)) {
      throw badRequest(`field label not supported: ${field}`);
    }
    reqs.push({ field, op: m[2] === '!=' ? 'neq' : 'eq', value: (m[3] ?? '').trim() });
  }
  return reqs;
}

/** True when the object satisfies every field requirement (missing fields compare as ""). */
export function matchFields(reqs: readonly FieldRequirement[], obj: KubeObject): boolean {
  return reqs.every((r) => {
    const raw = getPath(obj, r.field);
    const v = raw === undefined || raw === null ? '' : String(raw);
    return r.op === 'eq' ? v === r.value : v !== r.value;
  });
}

/** Converts a metav1.LabelSelector to its canonical string form ("a=b,c in (d)"). */
export function labelSelectorToString(sel: unknown): string {
  if (!isObj(sel)) return '';
  const parts: string[] = [];
  const ml = isObj(sel.matchLabels) ? sel.matchLabels : {};
  for (const k of Object.keys(ml).sort()) parts.push(`${k}=${String(ml[k])}`);
  const exprs = Array.isArray(sel.matchExpressions) ? sel.matchExpressions : [];
  for (const e of exprs) {
    if (!isObj(e)) continue;
    const key = String(e.key);
    const values = Array.isArray(e.values) ? e.values.map(String).sort() : [];
    switch (e.operator) {
      case 'In': parts.push(`${key} in (${values.join(',')})`); break;
      case 'NotIn': parts.push(`${key} notin (${values.join(',')})`); break;
      case 'Exists': parts.push(key); break;
      case 'DoesNotExist': parts.push(`!${key}`); break;
    }
  }
  return parts.join(',');
}

/** True when a metav1.LabelSelector object selects the labels (an empty selector selects everything). */
export function selectorMatches(sel: unknown, labels: Record<string, string> | undefined): boolean {
  const text = labelSelectorToString(sel);
  return text === '' ? true : matchLabels(parseLabelSelector(text), labels);
}
