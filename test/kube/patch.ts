// The three non-apply patch formats: JSON merge patch (RFC 7386), JSON patch
// (RFC 6902) and strategic merge patch (merge patch that merges keyed lists by key).
import { itemKey } from './listtypes.ts';
import type { ListTypeResolver } from './listtypes.ts';
import { clone, deepEqual, isObj } from './types.ts';
import type { Obj } from './types.ts';

/** A patch that cannot be applied; the server turns it into 422 (or 400 for malformed input). */
export class PatchError extends Error {
  /** `code` is the HTTP code the server should answer with. */
  constructor(message: string, readonly code: 400 | 422 = 422) {
    super(message);
  }
}

/** Applies an RFC 7386 JSON merge patch and returns the new document. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  const out: Obj = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function unescape(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

function parsePointer(ptr: unknown): string[] {
  if (typeof ptr !== 'string') throw new PatchError('JSON patch operation is missing a string "path"', 400);
  if (ptr === '') return [];
  if (!ptr.startsWith('/')) throw new PatchError(`invalid JSON pointer "${ptr}"`, 400);
  return ptr.slice(1).split('/').map(unescape);
}

function parentOf(doc: unknown, tokens: string[], ptr: string): { parent: Obj | unknown[]; last: string } {
  let cur: unknown = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObj(cur)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) throw new PatchError(`doc is missing path: "${ptr}": missing value`);
  }
  if (!Array.isArray(cur) && !isObj(cur)) throw new PatchError(`doc is missing path: "${ptr}": missing value`);
  return { parent: cur, last: tokens[tokens.length - 1] ?? '' };
}

function getAt(doc: unknown, ptr: string): unknown {
  let cur: unknown = doc;
  for (const t of parsePointer(ptr)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObj(cur)) cur = Object.prototype.hasOwnProperty.call(cur, t) ? cur[t] : undefined;
    else cur = undefined;
    if (cur === undefined) throw new PatchError(`doc is missing path: "${ptr}": missing value`);
  }
  return cur;
}

function arrayIndex(arr: unknown[], last: string, ptr: string, forAdd: boolean): number {
  if (forAdd && last === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(last)) throw new PatchError(`invalid array index "${last}" in "${ptr}"`);
  const i = Number(last);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new PatchError(`unable to access invalid index: ${i}`);
  return i;
}

function addAt(doc: unknown, ptr: string, value: unknown): unknown {
  const tokens = parsePointer(ptr);
  if (tokens.length === 0) return clone(value);
  const { parent, last } = parentOf(doc, tokens, ptr);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, ptr, true), 0, clone(value));
  else parent[last] = clone(value);
  return doc;
}

function removeAt(doc: unknown, ptr: string): unknown {
  const tokens = parsePointer(ptr);
  const { parent, last } = parentOf(doc, tokens, ptr);
  if (Array.isArray(parent)) {
    parent.splice(arrayIndex(parent, last, ptr, false), 1);
  } else {
    if (!Object.prototype.hasOwnProperty.call(parent, last)) throw new PatchError(`doc is missing path: "${ptr}": missing value`);
    delete parent[last];
  }
  return doc;
}

/** Applies an RFC 6902 JSON patch (add, remove, replace, move, copy, test). */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new PatchError('json: cannot unmarshal object into Go value of type jsonpatch.Patch', 400);
  let doc = clone(target);
  for (const op of ops) {
    if (!isObj(op)) throw new PatchError('JSON patch operation must be an object', 400);
    const path = String(op.path);
    switch (op.op) {
      case 'add': doc = addAt(doc, path, op.value); break;
      case 'remove': doc = removeAt(doc, path); break;
      case 'replace': getAt(doc, path); doc = addAt(removeAt(doc, path), path, op.value); break;
      case 'move': {
        const v = getAt(doc, String(op.from));
        doc = addAt(removeAt(doc, String(op.from)), path, v);
        break;
      }
      case 'copy': doc = addAt(doc, path, getAt(doc, String(op.from))); break;
      case 'test':
        if (!deepEqual(getAt(doc, path), op.value)) throw new PatchError(`testing value ${path} failed: test failed`);
        break;
      default: throw new PatchError(`Unexpected kind: ${String(op.op)}`, 400);
    }
  }
  return doc;
}

/**
 * Applies a strategic merge patch: like a merge patch, but lists the resolver calls
 * keyed are merged item by item ({"$patch":"delete"} items are removed), sets are unioned,
 * and "$"-directives are honoured or dropped.
 */
export function strategicMergePatch(target: unknown, patch: unknown, resolve: ListTypeResolver, path: string[] = []): unknown {
  if (!isObj(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _p, ...rest } = patch;
    return clone(rest);
  }
  const out: Obj = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue;
    if (v === null) { delete out[k]; continue; }
    const childPath = [...path, k];
    if (Array.isArray(v)) {
      const lt = resolve(childPath);
      const cur = Array.isArray(out[k]) ? (out[k] as unknown[]) : [];
      if (lt.type === 'map') {
        const merged = [...cur.map((x) => clone(x))];
        let keyed = true;
        for (const item of v) {
          const key = itemKey(item, lt);
          if (key === undefined) { keyed = false; break; }
          const idx = merged.findIndex((m) => itemKey(m, lt) === key);
          if (isObj(item) && item.$patch === 'delete') { if (idx >= 0) merged.splice(idx, 1); continue; }
          if (idx >= 0) merged[idx] = strategicMergePatch(merged[idx], item, resolve, [...childPath, '[]']);
          else merged.push(strategicMergePatch(undefined, item, resolve, [...childPath, '[]']));
        }
        out[k] = keyed ? merged : clone(v);
      } else if (lt.type === 'set') {
        const merged = [...cur];
        for (const item of v) if (!merged.some((m) => deepEqual(m, item))) merged.push(clone(item));
        out[k] = merged;
      } else {
        out[k] = clone(v);
      }
    } else {
      out[k] = strategicMergePatch(out[k], v, resolve, childPath);
    }
  }
  return out;
}
