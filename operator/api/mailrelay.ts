// The MailRelay resource: identity constants, the object type, defaults and the
// validation the CRD schema and its CEL rules cannot do (CIDRs, Secrets, unknown
// fields offline). The spec's shape itself is defined once, in schema.ts.
import type { ZodError } from 'zod';
import { CROSS_FIELD_RULES } from './rules.ts';
import { referencedSecretKeys, type MailRelayInputs } from './inputs.ts';
import { MailRelaySpecSchema, type MailRelaySpec, type MailRelaySpecDefaulted, type MailRelayStatus, type ValidationReason } from './schema.ts';
import { DURATION_PATTERN } from './duration.ts';
import { QUANTITY_PATTERN } from './quantity.ts';
import { specJsonSchema, type JsonSchema } from './json-schema.ts';

export type { MailRelaySpec, MailRelaySpecDefaulted, MailRelayStatus, Condition, ValidationReason } from './schema.ts';

/** API group of the MailRelay kind. */
export const GROUP = 'mailrelay.io';
/** The served and stored version. */
export const VERSION = 'v1alpha1';
/** apiVersion of MailRelay objects. */
export const API_VERSION = `${GROUP}/${VERSION}`;
/** The kind. */
export const KIND = 'MailRelay';
/** Plural resource name. */
export const PLURAL = 'mailrelays';
/**
 * The oldest Kubernetes minor the CRD and the operator work on: CEL validation rules with
 * fieldPath (1.28), the StatefulSet PVC retention policy and the PDB's
 * unhealthyPodEvictionPolicy. The chart's kubeVersion and every doc state this one.
 */
export const MIN_KUBERNETES_VERSION = '1.28';

/** The metadata fields the operator reads from a MailRelay. */
export interface MailRelayMetadata {
  /** Object name; also the prefix of every child's name. */
  name: string;
  /** Namespace of the MailRelay and all its children. */
  namespace?: string;
  /** UID, for the children's ownerReferences. */
  uid?: string;
  /** metadata.generation, echoed in status.observedGeneration. */
  generation?: number;
  /** Labels (not propagated to children). */
  labels?: Record<string, string>;
  /** Annotations (not propagated to children). */
  annotations?: Record<string, string>;
  /** Resource version, for optimistic concurrency on status writes. */
  resourceVersion?: string;
}

/** A MailRelay object as read from the API server or a manifest. */
export interface MailRelay {
  /** Always mailrelay.io/v1alpha1. */
  apiVersion: typeof API_VERSION;
  /** Always MailRelay. */
  kind: typeof KIND;
  /** Object metadata. */
  metadata: MailRelayMetadata;
  /** Desired state. */
  spec: MailRelaySpec;
  /** Observed state (written by the operator). */
  status?: MailRelayStatus;
}

/** One thing wrong with a MailRelay, naming the field at fault. */
export interface ValidationProblem {
  /** Field path, e.g. 'spec.relayNetworks[1]'. */
  field: string;
  /** Machine-readable kind of problem. */
  reason: ValidationReason;
  /** What is wrong, for humans. */
  message: string;
}

/** Thrown by withDefaults and the builders for a MailRelay that does not validate. */
export class InvalidMailRelayError extends Error {
  /** Wraps the problems; the message lists them one per line. */
  constructor(readonly problems: readonly ValidationProblem[]) {
    super(`invalid MailRelay:\n${problems.map((p) => `  ${p.field}: ${p.message} (${p.reason})`).join('\n')}`);
    this.name = 'InvalidMailRelayError';
  }
}

/** Formats a path ['relayNetworks', 1] as 'spec.relayNetworks[1]' (map keys that are not identifiers in brackets). */
export function fieldPath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += `.${seg}`;
    else out += `[${String(seg)}]`;
  }
  return out;
}

const PATTERN_REASONS = new Map<string, ValidationReason>([
  [String(new RegExp(QUANTITY_PATTERN)), 'InvalidQuantity'],
  [String(new RegExp(DURATION_PATTERN)), 'InvalidDuration'],
]);

function zodProblems(err: ZodError): ValidationProblem[] {
  return err.issues.map((issue) => {
    let reason: ValidationReason = 'InvalidValue';
    const params = (issue as { params?: { reason?: ValidationReason } }).params;
    if (issue.code === 'custom' && params?.reason) reason = params.reason;
    else if (issue.code === 'invalid_format' && 'pattern' in issue && typeof issue.pattern === 'string') reason = PATTERN_REASONS.get(issue.pattern) ?? 'InvalidValue';
    const message = issue.code === 'invalid_type' && /received undefined$/.test(issue.message) ? 'is required' : issue.message;
    return { field: fieldPath('spec', issue.path), reason, message };
  });
}

/** Relay pods when neither spec.replicas nor autoscaling says otherwise. */
export const DEFAULT_REPLICAS = 2;

/**
 * The replicas the spec itself asks for: spec.replicas, else autoscaling.minReplicas, else
 * DEFAULT_REPLICAS. With autoscaling.mode operator the autoscaler's choice replaces it
 * (operator/autoscaling/decide.ts); this is where it starts.
 */
export function requestedReplicas(spec: Pick<MailRelaySpecDefaulted, 'replicas' | 'autoscaling'>): number {
  return spec.replicas ?? spec.autoscaling?.minReplicas ?? DEFAULT_REPLICAS;
}

/** True when the operator's own autoscaler sets the replicas (spec.autoscaling with mode operator). */
export function operatorAutoscales(spec: Pick<MailRelaySpecDefaulted, 'autoscaling'>): boolean {
  return spec.autoscaling?.mode === 'operator';
}

/** Returns a copy of the spec with every default filled in; never mutates its input. Throws InvalidMailRelayError if the spec does not match the schema. */
export function withDefaults(spec: MailRelaySpec): MailRelaySpecDefaulted {
  const r = MailRelaySpecSchema.safeParse(structuredClone(spec ?? {}));
  if (!r.success) throw new InvalidMailRelayError(zodProblems(r.error));
  return r.data;
}

function unknownFields(value: unknown, schema: JsonSchema | undefined, path: PropertyKey[], out: ValidationProblem[]): void {
  if (!schema || schema['x-kubernetes-preserve-unknown-fields'] === true) return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => unknownFields(v, schema.items, [...path, i], out));
    return;
  }
  if (value === null || typeof value !== 'object') return;
  for (const [k, v] of Object.entries(value)) {
    if (schema.properties) {
      const child = schema.properties[k];
      if (child) unknownFields(v, child, [...path, k], out);
      else out.push({ field: fieldPath('spec', [...path, k]), reason: 'UnknownField', message: 'unknown field (the API server would reject or drop it)' });
    } else if (typeof schema.additionalProperties === 'object') {
      unknownFields(v, schema.additionalProperties, [...path, k], out);
    }
  }
}

/** Reserved label prefix: the operator's own labels select the pods. */
const RESERVED_LABEL_PREFIX = 'app.kubernetes.io/';
/** Reserved annotation prefix: mailrelay.io/config-hash rolls the pods. */
const RESERVED_ANNOTATION_PREFIX = 'mailrelay.io/';

/**
 * Everything wrong with a MailRelay that can be known before rendering: schema
 * violations (type, range, pattern, CIDR, quantity, duration, unknown fields),
 * cross-field rules (the CEL rules of the CRD), reserved labels, and referenced
 * Secrets or keys missing from inputs.secrets. Empty means valid. The builders add
 * one more check, the relay's own config schema (InvalidRelayConfig).
 */
export function validateMailRelay(mr: Pick<MailRelay, 'metadata' | 'spec'>, inputs: Pick<MailRelayInputs, 'secrets'>): ValidationProblem[] {
  const problems: ValidationProblem[] = [];
  const name = mr.metadata?.name ?? '';
  unknownFields(mr.spec ?? {}, specJsonSchema(), [], problems);
  const parsed = MailRelaySpecSchema.safeParse(structuredClone(mr.spec ?? {}));
  if (!parsed.success) {
    problems.push(...zodProblems(parsed.error));
    const nameRule = CROSS_FIELD_RULES.find((r) => r.field === 'metadata.name');
    if (nameRule && !nameRule.holds?.({} as MailRelaySpecDefaulted, name)) problems.push({ field: nameRule.field, reason: 'InvalidName', message: nameRule.message });
    return problems;
  }
  const spec = parsed.data;
  for (const rule of CROSS_FIELD_RULES) {
    if (rule.holds && !rule.holds(spec, name)) {
      problems.push({ field: rule.field, reason: rule.field === 'metadata.name' ? 'InvalidName' : 'InvalidCombination', message: rule.message });
    }
  }
  for (const key of Object.keys(spec.podLabels ?? {}).sort()) {
    if (key.startsWith(RESERVED_LABEL_PREFIX)) problems.push({ field: fieldPath('spec.podLabels', [key]), reason: 'ReservedKey', message: `labels under ${RESERVED_LABEL_PREFIX} are set by the operator (they select the pods)` });
  }
  for (const key of Object.keys(spec.podAnnotations ?? {}).sort()) {
    if (key.startsWith(RESERVED_ANNOTATION_PREFIX)) problems.push({ field: fieldPath('spec.podAnnotations', [key]), reason: 'ReservedKey', message: `annotations under ${RESERVED_ANNOTATION_PREFIX} are set by the operator` });
  }
  const seen = new Set<string>();
  for (const ref of referencedSecretKeys(spec)) {
    const secret = inputs.secrets[ref.name];
    if (!secret) {
      if (!seen.has(`${ref.secretField}/${ref.name}`)) problems.push({ field: ref.secretField, reason: 'SecretNotFound', message: `Secret "${ref.name}" not found in the MailRelay's namespace` });
      seen.add(`${ref.secretField}/${ref.name}`);
    } else if (secret.keys[ref.key] === undefined) {
      problems.push({ field: ref.field, reason: 'SecretKeyMissing', message: `Secret "${ref.name}" has no key "${ref.key}"` });
    } else if (ref.reveal && secret.revealed?.[ref.key] === undefined) {
      problems.push({ field: ref.field, reason: 'SecretKeyMissing', message: `the value of key "${ref.key}" of Secret "${ref.name}" was not read (the relay config needs it inline)` });
    }
  }
  return problems;
}
