// A small evaluator for the common forms of CRD x-kubernetes-validations (CEL):
// self/oldSelf, field access, has(), size(), comparisons, arithmetic, &&, ||, !,
// ?:, in, list literals, startsWith/endsWith/contains/matches, all()/exists().
// A rule using anything else is skipped (not enforced), and reported by
// unsupportedCelRules() so a test can see what went unchecked.
import type { StatusCause } from './status.ts';
import { deepEqual, isObj } from './types.ts';
import type { KubeObject, Obj } from './types.ts';

type Node =
  | { t: 'lit'; v: unknown }
  | { t: 'id'; name: string }
  | { t: 'list'; items: Node[] }
  | { t: 'member'; obj: Node; name: string }
  | { t: 'index'; obj: Node; idx: Node }
  | { t: 'call'; fn: string; target?: Node; args: Node[] }
  | { t: 'un'; op: string; x: Node }
  | { t: 'bin'; op: string; a: Node; b: Node }
  | { t: 'cond'; c: Node; a: Node; b: Node };

/** The expression uses CEL this evaluator does not implement. */
class Unsupported extends Error {}
/** A CEL runtime error (e.g. no such key), which the server reports as a failure. */
class EvalError extends Error {}

const TOKEN = /\s*(?:(\d+\.\d+(?:[eE][-+]?\d+)?)|(\d+u?)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|([A-Za-z_][A-Za-z0-9_]*)|(&&|\|\||==|!=|<=|>=|[-+*/%<>!?:.,()[\]]))/y;

function tokenize(src: string): string[] {
  const out: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < src.length) {
    if (/^\s*$/.test(src.slice(TOKEN.lastIndex))) break;
    const m = TOKEN.exec(src);
    if (!m) throw new Unsupported(`cannot tokenize at ${TOKEN.lastIndex}`);
    out.push(m[0].trim());
  }
  return out;
}

function parse(src: string): Node {
  const toks = tokenize(src);
  let i = 0;
  const peek = () => toks[i];
  const next = () => toks[i++] ?? '';
  const expect = (t: string) => { if (next() !== t) throw new Unsupported(`expected ${t}`); };
  const PREC: Record<string, number> = { '||': 1, '&&': 2, '==': 3, '!=': 3, '<': 3, '<=': 3, '>': 3, '>=': 3, in: 3, '+': 4, '-': 4, '*': 5, '/': 5, '%': 5 };

  function primary(): Node {
    const t = next();
    if (t === '(') { const e = expr(); expect(')'); return e; }
    if (t === '[') {
      const items: Node[] = [];
      while (peek() !== ']') { items.push(expr()); if (peek() === ',') next(); }
      expect(']');
      return { t: 'list', items };
    }
    if (t === '!' || t === '-') return { t: 'un', op: t, x: postfix(primary()) };
    if (/^\d+\.\d+/.test(t)) return { t: 'lit', v: Number(t) };
    if (/^\d+u?$/.test(t)) return { t: 'lit', v: Number(t.replace('u', '')) };
    if (t.startsWith('"') || t.startsWith("'")) return { t: 'lit', v: JSON.parse(`"${t.slice(1, -1).replace(/"/g, '\\"').replace(/\\'/g, "'")}"`) };
    if (t === 'true' || t === 'false') return { t: 'lit', v: t === 'true' };
    if (t === 'null') return { t: 'lit', v: null };
    if (/^[A-Za-z_]/.test(t)) {
      if (peek() === '(') {
        next();
        const args: Node[] = [];
        while (peek() !== ')') { args.push(expr()); if (peek() === ',') next(); }
        expect(')');
        return { t: 'call', fn: t, args };
      }
      return { t: 'id', name: t };
    }
    throw new Unsupported(`unexpected token ${t}`);
  }

  function postfix(n: Node): Node {
    for (;;) {
      if (peek() === '.') {
        next();
        const name = next();
        if (peek() === '(') {
          next();
          const args: Node[] = [];
          while (peek() !== ')') { args.push(expr()); if (peek() === ',') next(); }
          expect(')');
          n = { t: 'call', fn: name, target: n, args };
        } else {
          n = { t: 'member', obj: n, name };
        }
      } else if (peek() === '[') {
        next();
        const idx = expr();
        expect(']');
        n = { t: 'index', obj: n, idx };
      } else {
        return n;
      }
    }
  }

  function binary(minPrec: number): Node {
    let left = postfix(primary());
    for (;;) {
      const op = peek() ?? '';
      const p = PREC[op];
      if (p === undefined || p < minPrec) return left;
      next();
      const right = binary(p + 1);
      left = { t: 'bin', op, a: left, b: right };
    }
  }

  function expr(): Node {
    const c = binary(1);
    if (peek() === '?') {
      next();
      const a = expr();
      expect(':');
      const b = expr();
      return { t: 'cond', c, a, b };
    }
    return c;
  }

  const root = expr();
  if (i !== toks.length) throw new Unsupported(`trailing tokens in ${src}`);
  return root;
}

function referencesOldSelf(n: Node): boolean {
  switch (n.t) {
    case 'id': return n.name === 'oldSelf';
    case 'list': return n.items.some(referencesOldSelf);
    case 'member': return referencesOldSelf(n.obj);
    case 'index': return referencesOldSelf(n.obj) || referencesOldSelf(n.idx);
    case 'call': return (n.target ? referencesOldSelf(n.target) : false) || n.args.some(referencesOldSelf);
    case 'un': return referencesOldSelf(n.x);
    case 'bin': return referencesOldSelf(n.a) || referencesOldSelf(n.b);
    case 'cond': return referencesOldSelf(n.c) || referencesOldSelf(n.a) || referencesOldSelf(n.b);
    default: return false;
  }
}

function sizeOf(v: unknown): number {
  if (typeof v === 'string') return [...v].length;
  if (Array.isArray(v)) return v.length;
  if (isObj(v)) return Object.keys(v).length;
  throw new EvalError('no such overload: size');
}

function evaluate(n: Node, env: Record<string, unknown>): unknown {
  switch (n.t) {
    case 'lit': return n.v;
    case 'list': return n.items.map((x) => evaluate(x, env));
    case 'id':
      if (!(n.name in env)) throw new Unsupported(`unknown identifier ${n.name}`);
      return env[n.name];
    case 'member': {
      const o = evaluate(n.obj, env);
      if (!isObj(o) || !(n.name in o)) throw new EvalError(`no such key: ${n.name}`);
      return o[n.name];
    }
    case 'index': {
      const o = evaluate(n.obj, env);
      const k = evaluate(n.idx, env);
      if (Array.isArray(o) && typeof k === 'number') { if (k < 0 || k >= o.length) throw new EvalError('index out of range'); return o[k]; }
      if (isObj(o) && typeof k === 'string') { if (!(k in o)) throw new EvalError(`no such key: ${k}`); return o[k]; }
      throw new EvalError('no such overload: index');
    }
    case 'un': {
      const x = evaluate(n.x, env);
      if (n.op === '!') { if (typeof x !== 'boolean') throw new EvalError('no such overload: !'); return !x; }
      if (typeof x !== 'number') throw new EvalError('no such overload: -');
      return -x;
    }
    case 'cond': return evaluate(n.c, env) === true ? evaluate(n.a, env) : evaluate(n.b, env);
    case 'bin': return binaryOp(n, env);
    case 'call': return call(n, env);
  }
}

/** A CEL google.protobuf.Duration value, in (fractional) seconds. */
class CelDuration {
  constructor(readonly seconds: number) {}
}

const GO_DURATION_UNITS: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, 'µs': 1e-6, ns: 1e-9 };

/** CEL duration(string): Go's time.ParseDuration syntax ("1h30m", "90s", "1.5h"). */
function parseCelDuration(text: unknown): CelDuration {
  if (typeof text !== 'string') throw new EvalError('no such overload: duration');
  const m = /^([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:h|ms|us|µs|ns|m|s))+$/.exec(text);
  if (!m && text !== '0') throw new EvalError(`invalid duration: ${JSON.stringify(text)}`);
  let total = 0;
  for (const part of text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)/g)) total += Number(part[1]) * (GO_DURATION_UNITS[part[2] ?? 's'] ?? 1);
  return new CelDuration(text.startsWith('-') ? -total : total);
}

function binaryOp(n: Extract<Node, { t: 'bin' }>, env: Record<string, unknown>): unknown {
  if (n.op === '&&' || n.op === '||') {
    // CEL's commutative short-circuit: an error on one side is absorbed if the other decides.
    let a: unknown; let aErr: unknown;
    try { a = evaluate(n.a, env); } catch (e) { if (e instanceof Unsupported) throw e; aErr = e; }
    if (n.op === '&&' && a === false) return false;
    if (n.op === '||' && a === true) return true;
    const b = evaluate(n.b, env);
    if (n.op === '&&' && b === false) return false;
    if (n.op === '||' && b === true) return true;
    if (aErr) throw aErr;
    return b;
  }
  const a = evaluate(n.a, env);
  const b = evaluate(n.b, env);
  switch (n.op) {
    case '==': return deepEqual(a, b);
    case '!=': return !deepEqual(a, b);
    case 'in':
      if (Array.isArray(b)) return b.some((x) => deepEqual(x, a));
      if (isObj(b) && typeof a === 'string') return a in b;
      throw new EvalError('no such overload: in');
    case '+':
      if (typeof a === 'number' && typeof b === 'number') return a + b;
      if (typeof a === 'string' && typeof b === 'string') return a + b;
      if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b];
      throw new EvalError('no such overload: +');
  }
  if (n.op === '<' || n.op === '<=' || n.op === '>' || n.op === '>=') {
    if (a instanceof CelDuration && b instanceof CelDuration) {
      switch (n.op) {
        case '<': return a.seconds < b.seconds;
        case '<=': return a.seconds <= b.seconds;
        case '>': return a.seconds > b.seconds;
        default: return a.seconds >= b.seconds;
      }
    }
    if (!((typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string'))) throw new EvalError(`no such overload: ${n.op}`);
    switch (n.op) {
      case '<': return a < b;
      case '<=': return a <= b;
      case '>': return a > b;
      default: return a >= b;
    }
  }
  if (typeof a !== 'number' || typeof b !== 'number') throw new EvalError(`no such overload: ${n.op}`);
  switch (n.op) {
    case '-': return a - b;
    case '*': return a * b;
    case '/': if (b === 0) throw new EvalError('division by zero'); return Number.isInteger(a) && Number.isInteger(b) ? Math.trunc(a / b) : a / b;
    case '%': if (b === 0) throw new EvalError('modulus by zero'); return a % b;
  }
  throw new Unsupported(`operator ${n.op}`);
}

function call(n: Extract<Node, { t: 'call' }>, env: Record<string, unknown>): unknown {
  if (!n.target) {
    switch (n.fn) {
      case 'has': {
        const arg = n.args[0];
        if (!arg || arg.t !== 'member') throw new Unsupported('has() needs a field selection');
        const o = evaluate(arg.obj, env);
        return isObj(o) && arg.name in o && o[arg.name] !== undefined;
      }
      case 'size': return sizeOf(evaluate(n.args[0] ?? { t: 'lit', v: undefined }, env));
      case 'int': { const v = evaluate(n.args[0] ?? { t: 'lit', v: 0 }, env); const x = Math.trunc(Number(v)); if (Number.isNaN(x)) throw new EvalError('cannot convert to int'); return x; }
      case 'string': return String(evaluate(n.args[0] ?? { t: 'lit', v: '' }, env));
      case 'double': return Number(evaluate(n.args[0] ?? { t: 'lit', v: 0 }, env));
      case 'duration': return parseCelDuration(evaluate(n.args[0] ?? { t: 'lit', v: undefined }, env));
      default: throw new Unsupported(`function ${n.fn}`);
    }
  }
  if (n.fn === 'all' || n.fn === 'exists' || n.fn === 'exists_one' || n.fn === 'filter' || n.fn === 'map') {
    const v = n.args[0];
    const body = n.args[1];
    if (!v || v.t !== 'id' || !body || n.args.length !== 2) throw new Unsupported(`${n.fn}() form`);
    const target = evaluate(n.target, env);
    const items = Array.isArray(target) ? target : isObj(target) ? Object.keys(target) : undefined;
    if (!items) throw new EvalError(`no such overload: ${n.fn}`);
    const results = items.map((item) => evaluate(body, { ...env, [v.name]: item }));
    if (n.fn === 'all') return results.every((r) => r === true);
    if (n.fn === 'exists') return results.some((r) => r === true);
    if (n.fn === 'exists_one') return results.filter((r) => r === true).length === 1;
    if (n.fn === 'filter') return items.filter((_, i) => results[i] === true);
    return results;
  }
  const target = evaluate(n.target, env);
  const args = n.args.map((a) => evaluate(a, env));
  const s = typeof target === 'string' ? target : undefined;
  const a0 = args[0];
  switch (n.fn) {
    case 'size': return sizeOf(target);
    case 'getSeconds': if (target instanceof CelDuration) return Math.trunc(target.seconds); break;
    case 'startsWith': if (s !== undefined && typeof a0 === 'string') return s.startsWith(a0); break;
    case 'endsWith': if (s !== undefined && typeof a0 === 'string') return s.endsWith(a0); break;
    case 'contains': if (s !== undefined && typeof a0 === 'string') return s.includes(a0); break;
    case 'matches': if (s !== undefined && typeof a0 === 'string') return new RegExp(a0).test(s); break;
    case 'lowerAscii': if (s !== undefined) return s.toLowerCase(); break;
    case 'upperAscii': if (s !== undefined) return s.toUpperCase(); break;
    default: throw new Unsupported(`method ${n.fn}`);
  }
  throw new EvalError(`no such overload: ${n.fn}`);
}

/** Outcome of one rule: true (passes), false (fails), an error message, or 'unsupported'. */
export function evalRule(rule: string, self: unknown, oldSelf?: unknown): boolean | string | 'unsupported' {
  let ast: Node;
  try { ast = parse(rule); } catch { return 'unsupported'; }
  const env: Record<string, unknown> = { self };
  if (oldSelf !== undefined) env.oldSelf = oldSelf;
  try {
    const r = evaluate(ast, env);
    if (typeof r !== 'boolean') return 'unsupported';
    return r;
  } catch (e) {
    if (e instanceof Unsupported) return 'unsupported';
    return (e as Error).message;
  }
}

const unsupported = new Set<string>();

/** Rules seen so far that this evaluator could not check (they were skipped). */
export function unsupportedCelRules(): string[] {
  return [...unsupported];
}

/** Evaluates every x-kubernetes-validations rule in the schema against the object; returns failures. */
export function celRuleFailures(schema: Obj, obj: KubeObject, old?: KubeObject): StatusCause[] {
  const causes: StatusCause[] = [];
  walk(schema, obj, old, '', causes);
  return causes;
}

function walk(schema: unknown, value: unknown, old: unknown, path: string, causes: StatusCause[]): void {
  if (!isObj(schema) || value === undefined || value === null) return;
  const rules = Array.isArray(schema['x-kubernetes-validations']) ? schema['x-kubernetes-validations'] : [];
  for (const r of rules) {
    if (!isObj(r) || typeof r.rule !== 'string') continue;
    let usesOld = false;
    try { usesOld = referencesOldSelf(parse(r.rule)); } catch { unsupported.add(r.rule); continue; }
    if (usesOld && (old === undefined || old === null)) continue; // transition rules only run on update
    const res = evalRule(r.rule, value, usesOld ? old : undefined);
    if (res === true) continue;
    if (res === 'unsupported') { unsupported.add(r.rule); continue; }
    const field = typeof r.fieldPath === 'string' ? `${path}${r.fieldPath}` : path;
    const reason = typeof r.reason === 'string' ? r.reason : 'FieldValueInvalid';
    const shown = isObj(value) ? '"object"' : JSON.stringify(value);
    const msg = res === false ? (typeof r.message === 'string' ? r.message : `failed rule: ${r.rule}`) : `${res} evaluating rule: ${r.rule}`;
    causes.push({ reason, message: `Invalid value: ${shown}: ${msg}`, field: field.replace(/^\./, '') });
  }
  if (isObj(value)) {
    const props = isObj(schema.properties) ? schema.properties : {};
    for (const [k, v] of Object.entries(value)) {
      const ps = isObj(props[k]) ? props[k] : isObj(schema.additionalProperties) ? schema.additionalProperties : undefined;
      if (ps) walk(ps, v, isObj(old) ? old[k] : undefined, path === '' ? k : `${path}.${k}`, causes);
    }
  } else if (Array.isArray(value) && isObj(schema.items)) {
    value.forEach((item, i) => walk(schema.items, item, Array.isArray(old) ? old[i] : undefined, `${path}[${i}]`, causes));
  }
}
