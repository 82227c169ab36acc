// Validation as the API server does it: custom resources are pruned, defaulted and
// checked against the CRD's openAPIV3Schema (ajv, plus the simple forms of CEL
// x-kubernetes-validations); built-in kinds are checked with kubernetes-models'
// schemas plus the handful of semantic rules operators most often trip over.
// Failures become StatusCauses worded like the real server's field errors.
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Lease } from 'kubernetes-models/coordination.k8s.io/v1/Lease';
import { Event as EventsV1Event } from 'kubernetes-models/events.k8s.io/v1/Event';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Event as CoreEvent } from 'kubernetes-models/v1/Event';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { celRuleFailures } from './cel.ts';
import { labelSelectorToString, selectorMatches } from './selectors.ts';
import type { StatusCause } from './status.ts';
import { fmtValue } from './status.ts';
import { clone, deepEqual, isObj } from './types.ts';
import type { KubeObject, Obj } from './types.ts';

interface Validatable { validate(): void }
type ModelCtor = new (data: never) => Validatable;

/** kubernetes-models classes for the built-in kinds this server serves, by "group/Kind". */
const MODELS: Record<string, ModelCtor> = {
  '/Namespace': Namespace, '/ConfigMap': ConfigMap, '/Secret': Secret, '/Service': Service,
  '/ServiceAccount': ServiceAccount, '/Pod': Pod, '/PersistentVolumeClaim': PersistentVolumeClaim, '/Event': CoreEvent,
  'apps/StatefulSet': StatefulSet, 'apps/Deployment': Deployment, 'policy/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/NetworkPolicy': NetworkPolicy, 'coordination.k8s.io/Lease': Lease, 'events.k8s.io/Event': EventsV1Event,
  'apiextensions.k8s.io/CustomResourceDefinition': CustomResourceDefinition,
};

// ---------------------------------------------------------------- field paths and messages

/** "/spec/items/0/name" → "spec.items[0].name". */
export function fieldPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(seg)) out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

/** JSON type name as the server prints it ("string", "integer", "object", ...). */
export function jsonTypeName(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function valueAt(root: unknown, pointer: string): unknown {
  let cur: unknown = root;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) cur = cur[Number(seg)];
    else if (isObj(cur)) cur = cur[seg];
    else return undefined;
  }
  return cur;
}

/** Converts ajv errors into Kubernetes field causes (type errors at one path are merged). */
export function ajvErrorsToCauses(errors: readonly ErrorObject[], root: unknown): StatusCause[] {
  const causes: StatusCause[] = [];
  const typeAt = new Map<string, string[]>();
  const specific = errors.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf' && e.keyword !== 'if');
  for (const e of specific) {
    const field = fieldPath(e.instancePath);
    const v = valueAt(root, e.instancePath);
    const p = e.params as Record<string, unknown>;
    switch (e.keyword) {
      case 'required': {
        const f = field ? `${field}.${String(p.missingProperty)}` : String(p.missingProperty);
        causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: f });
        break;
      }
      case 'type': {
        const list = typeAt.get(field) ?? [];
        list.push(String(p.type));
        typeAt.set(field, list);
        break;
      }
      case 'enum': {
        const allowed = (Array.isArray(p.allowedValues) ? p.allowedValues : []).map((x) => JSON.stringify(x)).join(', ');
        causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: ${fmtValue(v)}: supported values: ${allowed}`, field });
        break;
      }
      case 'minimum': case 'exclusiveMinimum':
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(v)}: ${field} in body should be greater than ${e.keyword === 'minimum' ? 'or equal to ' : ''}${String(p.limit)}`, field });
        break;
      case 'maximum': case 'exclusiveMaximum':
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(v)}: ${field} in body should be less than ${e.keyword === 'maximum' ? 'or equal to ' : ''}${String(p.limit)}`, field });
        break;
      case 'pattern':
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(v)}: ${field} in body should match '${String(p.pattern)}'`, field });
        break;
      case 'minLength':
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(v)}: ${field} in body should be at least ${String(p.limit)} chars long`, field });
        break;
      case 'maxLength':
        causes.push({ reason: 'FieldValueTooLong', message: `Too long: may not be more than ${String(p.limit)} bytes`, field });
        break;
      case 'minItems':
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${Array.isArray(v) ? v.length : 0}: ${field} in body should have at least ${String(p.limit)} items`, field });
        break;
      case 'maxItems':
        causes.push({ reason: 'FieldValueTooMany', message: `Too many: ${Array.isArray(v) ? v.length : 0}: must have at most ${String(p.limit)} items`, field });
        break;
      case 'minProperties':
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(v)}: ${field} in body should have at least ${String(p.limit)} properties`, field });
        break;
      case 'maxProperties':
        causes.push({ reason: 'FieldValueTooMany', message: `Too many: must have at most ${String(p.limit)} properties`, field });
        break;
      case 'format':
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(v)}: ${field} in body must be of type ${String(p.format)}: ${fmtValue(v)}`, field });
        break;
      case 'additionalProperties':
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(v)}: unknown field "${String(p.additionalProperty)}"`, field });
        break;
      default:
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(v)}: ${e.message ?? e.keyword}`, field });
    }
  }
  for (const [field, types] of typeAt) {
    const v = valueAt(root, `/${field.replace(/\[(\d+)\]/g, '.$1').split('.').join('/')}`);
    const t = jsonTypeName(v);
    causes.push({ reason: 'FieldValueTypeInvalid', message: `Invalid value: "${t}": ${field} in body must be of type ${[...new Set(types)].join(',')}: "${t}"`, field });
  }
  return causes;
}

// ---------------------------------------------------------------- custom resources

const ajv = new Ajv({ strict: false, allErrors: true, logger: false, validateFormats: true });
const isNumber = () => true;
for (const f of ['int32', 'int64', 'float', 'double']) ajv.addFormat(f, { type: 'number', validate: isNumber });
ajv.addFormat('byte', /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/);
ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/);
ajv.addFormat('date', /^\d{4}-\d{2}-\d{2}$/);
ajv.addFormat('duration', /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
ajv.addFormat('uuid', /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/);
ajv.addFormat('ipv4', /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/);
ajv.addFormat('ipv6', /^[0-9a-fA-F:.]+$/);
ajv.addFormat('cidr', /^[0-9a-fA-F:.]+\/\d{1,3}$/);
ajv.addFormat('hostname', /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
ajv.addFormat('email', /^[^\s@]+@[^\s@]+$/);
ajv.addFormat('uri', /^[A-Za-z][A-Za-z0-9+.-]*:\S*$/);
for (const f of ['int-or-string', 'quantity', 'password', 'string', 'binary', 'uri-reference', 'mac', 'isbn', 'hexcolor', 'rgbcolor', 'creditcard', 'ssn', 'bsonobjectid']) {
  ajv.addFormat(f, () => true);
}

/** Rewrites an openAPIV3Schema into something ajv compiles (nullable without type, int-or-string). */
function toAjvSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toAjvSchema);
  if (!isObj(node)) return node;
  const out: Obj = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'default' || k === 'example' || k === 'enum') out[k] = v;
    else if (k === 'properties' && isObj(v)) out[k] = Object.fromEntries(Object.entries(v).map(([pk, pv]) => [pk, toAjvSchema(pv)]));
    else out[k] = toAjvSchema(v);
  }
  if (out.nullable === true && out.type === undefined) delete out.nullable;
  if (out['x-kubernetes-int-or-string'] === true && out.type === undefined && out.anyOf === undefined) {
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  }
  return out;
}

const compiled = new Map<string, ValidateFunction>();

function compile(schema: Obj): ValidateFunction {
  const key = JSON.stringify(schema);
  let fn = compiled.get(key);
  if (!fn) {
    fn = ajv.compile(toAjvSchema(schema) as Obj);
    compiled.set(key, fn);
  }
  return fn;
}

const ROOT_KEEP = new Set(['apiVersion', 'kind', 'metadata']);

/**
 * Drops fields the schema does not declare (unless x-kubernetes-preserve-unknown-fields),
 * in place; returns the dropped paths ("spec.foo") for Warning headers.
 */
export function prune(value: unknown, schema: unknown, path = '', isRoot = true, dropped: string[] = []): string[] {
  if (!isObj(schema)) return dropped;
  if (isObj(value)) {
    const props = isObj(schema.properties) ? schema.properties : undefined;
    const addl = schema.additionalProperties;
    const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
    const embedded = schema['x-kubernetes-embedded-resource'] === true;
    for (const k of Object.keys(value)) {
      const childPath = path === '' ? k : `${path}.${k}`;
      if (isRoot && ROOT_KEEP.has(k)) continue;
      if (props && isObj(props[k])) prune(value[k], props[k], childPath, false, dropped);
      else if (isObj(addl)) prune(value[k], addl, childPath, false, dropped);
      else if (addl === true || preserve || (embedded && ROOT_KEEP.has(k))) continue;
      else { delete value[k]; dropped.push(childPath); }
    }
  } else if (Array.isArray(value) && isObj(schema.items)) {
    value.forEach((item, i) => prune(item, schema.items, `${path}[${i}]`, false, dropped));
  }
  return dropped;
}

/** Applies schema defaults in place, recursively, as the API server does on write. */
export function applyDefaults(value: unknown, schema: unknown): void {
  if (!isObj(schema)) return;
  if (isObj(value)) {
    const props = isObj(schema.properties) ? schema.properties : {};
    for (const [k, ps] of Object.entries(props)) {
      if (!isObj(ps)) continue;
      if ((value[k] === undefined || (value[k] === null && ps.nullable !== true)) && ps.default !== undefined) value[k] = clone(ps.default);
      if (value[k] !== undefined) applyDefaults(value[k], ps);
    }
    if (isObj(schema.additionalProperties)) for (const k of Object.keys(value)) if (!(k in props)) applyDefaults(value[k], schema.additionalProperties);
  } else if (Array.isArray(value) && isObj(schema.items)) {
    for (const item of value) applyDefaults(item, schema.items);
  }
}

/** Result of preparing a custom resource for storage. */
export interface CrCheck {
  causes: StatusCause[];
  /** Fields pruned as unknown ("spec.foo"). */
  unknownFields: string[];
}

/** Prunes, defaults (in place) and validates a custom resource against its version's schema. */
export function validateCustomResource(obj: KubeObject, schema: Obj | undefined, old?: KubeObject): CrCheck {
  if (!schema) return { causes: [], unknownFields: [] };
  const unknownFields = prune(obj, schema);
  applyDefaults(obj, schema);
  const fn = compile(stripMetadata(schema));
  const causes = fn(obj) ? [] : ajvErrorsToCauses(fn.errors ?? [], obj);
  if (causes.length === 0) causes.push(...celRuleFailures(schema, obj, old));
  return { causes, unknownFields };
}

function stripMetadata(schema: Obj): Obj {
  if (!isObj(schema.properties) || !isObj(schema.properties.metadata)) return schema;
  const { metadata: _m, ...props } = schema.properties;
  return { ...schema, properties: props };
}

// ---------------------------------------------------------------- object metadata

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const SUBDOMAIN_MSG = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/** Which name rule a kind uses. */
export type NameRule = 'subdomain' | 'label' | 'dns1035' | 'path';

/** Checks a name against a rule; returns a message or undefined. */
export function checkName(name: string, rule: NameRule): string | undefined {
  if (rule === 'path') return name === '.' || name === '..' || name.includes('/') || name.includes('%') ? `may not contain '/' or '%'` : undefined;
  if (rule === 'label') return name.length > 63 ? 'must be no more than 63 characters' : DNS1123_LABEL.test(name) ? undefined : LABEL_MSG;
  if (rule === 'dns1035') return name.length > 63 ? 'must be no more than 63 characters' : DNS1035_LABEL.test(name) ? undefined : DNS1035_MSG;
  return name.length > 253 ? 'must be no more than 253 characters' : DNS1123_SUBDOMAIN.test(name) ? undefined : SUBDOMAIN_MSG;
}

function checkQualifiedName(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  if (prefix !== undefined && (prefix === '' || !DNS1123_SUBDOMAIN.test(prefix) || prefix.length > 253)) return 'prefix part ' + SUBDOMAIN_MSG;
  if (name === '' || name.length > 63 || !LABEL_NAME.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
  }
  return undefined;
}

/** Validates metadata: name format, labels and annotation keys. */
export function validateMeta(obj: KubeObject, rule: NameRule): StatusCause[] {
  const causes: StatusCause[] = [];
  const m = obj.metadata;
  const name = m.name ?? '';
  if (name === '') causes.push({ reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' });
  else {
    const msg = checkName(name, rule);
    if (msg) causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(name)}: ${msg}`, field: 'metadata.name' });
  }
  for (const [k, v] of Object.entries(m.labels ?? {})) {
    const km = checkQualifiedName(k);
    if (km) causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(k)}: ${km}`, field: 'metadata.labels' });
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) {
      causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(v)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`, field: 'metadata.labels' });
    }
  }
  for (const [k, v] of Object.entries(m.annotations ?? {})) {
    const km = checkQualifiedName(k.toLowerCase());
    if (km) causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(k)}: ${km}`, field: 'metadata.annotations' });
    if (typeof v !== 'string') causes.push({ reason: 'FieldValueTypeInvalid', message: `Invalid value: "${jsonTypeName(v)}": must be of type string`, field: `metadata.annotations.${k}` });
  }
  for (const [i, ref] of (m.ownerReferences ?? []).entries()) {
    for (const f of ['apiVersion', 'kind', 'name', 'uid'] as const) {
      if (!isObj(ref) || typeof ref[f] !== 'string' || ref[f] === '') {
        causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: `metadata.ownerReferences[${i}].${f}` });
      }
    }
  }
  if ((m.ownerReferences ?? []).filter((r) => r.controller === true).length > 1) {
    causes.push({ reason: 'FieldValueInvalid', message: 'Invalid value: []v1.OwnerReference{...}: Only one reference can have Controller set to true', field: 'metadata.ownerReferences' });
  }
  return causes;
}

// ---------------------------------------------------------------- built-in kinds

function modelCauses(key: string, obj: KubeObject): StatusCause[] {
  const Model = MODELS[key];
  if (!Model) return [];
  try {
    new Model(clone(obj) as never).validate();
    return [];
  } catch (e) {
    const errors = (e as { errors?: ErrorObject[] }).errors;
    if (!Array.isArray(errors)) return [{ reason: 'FieldValueInvalid', message: String((e as Error).message) }];
    // kubernetes-models reports metadata through its own schema; name rules are checked separately.
    return ajvErrorsToCauses(errors, obj);
  }
}

function containerCauses(podSpec: unknown, base: string): StatusCause[] {
  const causes: StatusCause[] = [];
  if (!isObj(podSpec)) return causes;
  for (const list of ['initContainers', 'containers'] as const) {
    const cs = podSpec[list];
    if (!Array.isArray(cs)) continue;
    const seen = new Set<string>();
    cs.forEach((c, i) => {
      if (!isObj(c)) return;
      const f = `${base}.${list}[${i}]`;
      const name = typeof c.name === 'string' ? c.name : '';
      if (name !== '' && !DNS1123_LABEL.test(name)) causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(name)}: ${LABEL_MSG}`, field: `${f}.name` });
      if (seen.has(name)) causes.push({ reason: 'FieldValueDuplicate', message: `Duplicate value: ${JSON.stringify(name)}`, field: `${f}.name` });
      seen.add(name);
      if (typeof c.image !== 'string' || c.image.trim() === '') causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: `${f}.image` });
    });
  }
  if (Array.isArray(podSpec.containers) && podSpec.containers.length === 0) {
    causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: `${base}.containers` });
  }
  return causes;
}

function workloadCauses(obj: KubeObject): StatusCause[] {
  const spec = isObj(obj.spec) ? obj.spec : {};
  const causes: StatusCause[] = [];
  const tmpl = isObj(spec.template) ? spec.template : {};
  const labels = isObj(tmpl.metadata) && isObj(tmpl.metadata.labels) ? (tmpl.metadata.labels as Record<string, string>) : {};
  const sel = spec.selector;
  if (isObj(sel) && labelSelectorToString(sel) === '') {
    causes.push({ reason: 'FieldValueInvalid', message: 'Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment', field: 'spec.selector' });
  } else if (isObj(sel) && !selectorMatches(sel, labels)) {
    causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(labels)}: \`selector\` does not match template \`labels\``, field: 'spec.template.metadata.labels' });
  }
  causes.push(...containerCauses(tmpl.spec, 'spec.template.spec'));
  if (typeof spec.replicas === 'number' && spec.replicas < 0) {
    causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${spec.replicas}: must be greater than or equal to 0`, field: 'spec.replicas' });
  }
  return causes;
}

const STS_MUTABLE = ['replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy', 'minReadySeconds'];

/** Kind-specific rules that the JSON schema cannot express; `old` is set on update. */
function semanticCauses(key: string, obj: KubeObject, old: KubeObject | undefined): StatusCause[] {
  const spec = isObj(obj.spec) ? obj.spec : {};
  const oldSpec = old && isObj(old.spec) ? old.spec : {};
  const causes: StatusCause[] = [];
  switch (key) {
    case 'apps/StatefulSet': {
      causes.push(...workloadCauses(obj));
      if (old) {
        const strip = (s: Obj) => Object.fromEntries(Object.entries(s).filter(([k]) => !STS_MUTABLE.includes(k)));
        if (!deepEqual(strip(spec), strip(oldSpec))) {
          causes.push({ reason: 'FieldValueForbidden', message: "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden", field: 'spec' });
        }
      }
      break;
    }
    case 'apps/Deployment':
      causes.push(...workloadCauses(obj));
      if (old && !deepEqual(spec.selector, oldSpec.selector)) {
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(spec.selector)}: field is immutable`, field: 'spec.selector' });
      }
      break;
    case '/Pod':
      causes.push(...containerCauses(spec, 'spec'));
      break;
    case '/Service': {
      const ports = Array.isArray(spec.ports) ? spec.ports : [];
      const headless = spec.clusterIP === 'None';
      if (ports.length === 0 && !headless && spec.type !== 'ExternalName') causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.ports' });
      if (ports.length > 1) ports.forEach((p, i) => { if (!isObj(p) || !p.name) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: `spec.ports[${i}].name` }); });
      if (old && oldSpec.clusterIP !== undefined && spec.clusterIP !== undefined && spec.clusterIP !== oldSpec.clusterIP) {
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(spec.clusterIP)}: field is immutable`, field: 'spec.clusterIP' });
      }
      break;
    }
    case '/ConfigMap': case '/Secret': {
      for (const field of ['data', 'binaryData']) {
        const d = obj[field];
        if (!isObj(d)) continue;
        for (const k of Object.keys(d)) {
          if (!/^[-._a-zA-Z0-9]+$/.test(k) || k.length > 253) {
            causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(k)}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`, field: `${field}[${k}]` });
          }
        }
      }
      if (old && old.immutable === true) {
        if (!deepEqual(obj.data, old.data) || !deepEqual(obj.binaryData, old.binaryData)) {
          causes.push({ reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set', field: 'data' });
        }
        if (obj.immutable !== true) causes.push({ reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set', field: 'immutable' });
      }
      if (key === '/Secret' && old && obj.type !== old.type) {
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(obj.type)}: field is immutable`, field: 'type' });
      }
      break;
    }
    case '/PersistentVolumeClaim': {
      if (!Array.isArray(spec.accessModes) || spec.accessModes.length === 0) causes.push({ reason: 'FieldValueRequired', message: 'Required value: at least 1 access mode is required', field: 'spec.accessModes' });
      const req = isObj(spec.resources) && isObj(spec.resources.requests) ? spec.resources.requests : {};
      if (req.storage === undefined) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.resources[storage]' });
      break;
    }
    case 'policy/PodDisruptionBudget':
      if (spec.minAvailable !== undefined && spec.maxUnavailable !== undefined) {
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(spec)}: minAvailable and maxUnavailable cannot be both set`, field: 'spec' });
      }
      break;
    case 'apiextensions.k8s.io/CustomResourceDefinition':
      causes.push(...crdCauses(obj));
      break;
    case 'networking.k8s.io/NetworkPolicy':
      causes.push(...networkPolicyCauses(spec));
      break;
  }
  return causes;
}

/** The numeric range [first, last] of an IPv4 CIDR, or undefined (IPv6 and bad text: not checked here). */
function ipv4Range(cidr: unknown): [number, number] | undefined {
  const m = typeof cidr === 'string' ? /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr) : null;
  if (!m) return undefined;
  const ip = m.slice(1, 5).reduce((a, o) => a * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(m[5]));
  const first = Math.floor(ip / size) * size;
  return [first, first + size - 1];
}

/** networking/v1 validation the operator's children can hit: ipBlock.except must lie strictly inside cidr (found by the differential test). */
function networkPolicyCauses(spec: Obj): StatusCause[] {
  const causes: StatusCause[] = [];
  for (const dir of ['ingress', 'egress'] as const) {
    const rules = Array.isArray(spec[dir]) ? spec[dir] : [];
    rules.forEach((rule, i) => {
      const peers = isObj(rule) && Array.isArray(rule[dir === 'ingress' ? 'from' : 'to']) ? rule[dir === 'ingress' ? 'from' : 'to'] as unknown[] : [];
      peers.forEach((peer, j) => {
        const block = isObj(peer) && isObj(peer.ipBlock) ? peer.ipBlock : undefined;
        const outer = block ? ipv4Range(block.cidr) : undefined;
        if (!block || !outer || !Array.isArray(block.except)) return;
        block.except.forEach((ex, k) => {
          const inner = ipv4Range(ex);
          if (inner && !(inner[0] >= outer[0] && inner[1] <= outer[1] && (inner[0] !== outer[0] || inner[1] !== outer[1]))) {
            causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(ex)}: must be a strict subset of \`cidr\``, field: `spec.${dir}[${i}].${dir === 'ingress' ? 'from' : 'to'}[${j}].ipBlock.except[${k}]` });
          }
        });
      });
    });
  }
  return causes;
}

function crdCauses(obj: KubeObject): StatusCause[] {
  const causes: StatusCause[] = [];
  const spec = isObj(obj.spec) ? obj.spec : {};
  const names = isObj(spec.names) ? spec.names : {};
  const want = `${String(names.plural)}.${String(spec.group)}`;
  if (obj.metadata.name !== want) {
    causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(obj.metadata.name)}: must be spec.names.plural+"."+spec.group`, field: 'metadata.name' });
  }
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') {
    causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: ${fmtValue(spec.scope)}: supported values: "Cluster", "Namespaced"`, field: 'spec.scope' });
  }
  const versions = Array.isArray(spec.versions) ? spec.versions.filter(isObj) : [];
  if (versions.length === 0) causes.push({ reason: 'FieldValueRequired', message: 'Required value: must have exactly one version marked as storage version', field: 'spec.versions' });
  else if (versions.filter((v) => v.storage === true).length !== 1) {
    causes.push({ reason: 'FieldValueInvalid', message: 'Invalid value: must have exactly one version marked as storage version', field: 'spec.versions' });
  }
  versions.forEach((v, i) => {
    const schema = isObj(v.schema) ? v.schema.openAPIV3Schema : undefined;
    if (!isObj(schema)) causes.push({ reason: 'FieldValueRequired', message: 'Required value: schemas are required', field: `spec.versions[${i}].schema.openAPIV3Schema` });
    else if (schema.type !== 'object') causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(schema.type)}: must be object at the root`, field: `spec.versions[${i}].schema.openAPIV3Schema.type` });
    else {
      // apiextensions validation: the metadata schema may say nothing but type: object and
      // constraints on name/generateName (a description, too, is refused). Found by
      // test/cluster/differential.test.ts: the shipped CRD carried a description there and
      // no real API server would install it.
      const meta = isObj(schema.properties) ? schema.properties.metadata : undefined;
      if (isObj(meta) && Object.keys(meta).some((k) => k !== 'type' && !(k === 'properties' && isObj(meta.properties) && Object.keys(meta.properties).every((p) => p === 'name' || p === 'generateName')))) {
        causes.push({ reason: 'FieldValueForbidden', message: 'Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified', field: `spec.validation.openAPIV3Schema.properties[metadata]` });
      }
      try { compile(stripMetadata(schema)); } catch (e) {
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${String((e as Error).message)}`, field: `spec.versions[${i}].schema.openAPIV3Schema` });
      }
    }
  });
  return causes;
}

/** Validates a built-in kind (schema via kubernetes-models, then semantic rules); `old` is set on update. */
export function validateBuiltin(group: string, kind: string, obj: KubeObject, old?: KubeObject): StatusCause[] {
  const key = `${group}/${kind}`;
  const causes = modelCauses(key, obj).filter((c) => !(c.field ?? '').startsWith('metadata.'));
  if (causes.length > 0) return causes;
  return semanticCauses(key, obj, old);
}
