// What the controller observed in the cluster, handed to validation and to the pure
// builders. Secrets arrive as per-key sha256 digests, never as data: a digest is all the
// config hash needs, and inputs that hold no secret material can be logged, diffed and
// stored in golden files. The one exception, `revealed`, is explained below.
import { createHash } from 'node:crypto';
import type { MailRelaySpecDefaulted } from './schema.ts';

/** A Secret the MailRelay references, as observed. */
export interface SecretInput {
  /** Secret type, e.g. kubernetes.io/tls. */
  type?: string;
  /** sha256 (hex) of each key's decoded value, by key. */
  keys: Readonly<Record<string, string>>;
  /**
   * Plain values of the few keys the relay config must carry inline. Today only the
   * smarthost user name: the relay config takes `smarthost.auth.username` as a string
   * (it has no usernameFile yet), so the operator copies it into the ConfigMap.
   */
  revealed?: Readonly<Record<string, string>>;
}

/** Everything besides the MailRelay that validation and the builders read. */
export interface MailRelayInputs {
  /** Referenced Secrets found in the MailRelay's namespace, by name; a missing name means not found. */
  secrets: Readonly<Record<string, SecretInput>>;
  /** Image reference used for unset spec.image fields: the operator's own image. */
  defaultImage: string;
  /** Optional APIs the cluster serves (from discovery). */
  capabilities?: {
    /** monitoring.coreos.com/v1 ServiceMonitor exists. */
    serviceMonitor?: boolean;
    /** monitoring.coreos.com/v1 PrometheusRule exists. */
    prometheusRule?: boolean;
    /** keda.sh/v1alpha1 ScaledObject exists (KEDA is installed): spec.autoscaling.mode keda renders one. */
    scaledObject?: boolean;
  };
  /** StatefulSet replicas allowed by the scale-down plan (desired/scale-down.ts); defaults to spec.replicas. */
  statefulSetReplicas?: number;
  /** Operator-wide monitoring settings (chart values, passed as operator flags). */
  monitoring?: OperatorMonitoring;
}

/** Relabeling rules as the Prometheus Operator's ServiceMonitor endpoints take them (monitoring.coreos.com/v1 RelabelConfig). */
export interface RelabelConfig {
  sourceLabels?: string[];
  separator?: string;
  targetLabel?: string;
  regex?: string;
  modulus?: number;
  replacement?: string;
  action?: string;
}

/** How the operator's chart wants relay monitoring, for every MailRelay. */
export interface OperatorMonitoring {
  /** Labels on every relay ServiceMonitor, e.g. {release: kube-prometheus-stack} so a stock Prometheus selects it; a MailRelay's own labels win. */
  serviceMonitorLabels?: Readonly<Record<string, string>>;
  /** Relabelings added after the operator's own (which sets the `mailrelay` label). */
  relabelings?: readonly RelabelConfig[];
  /** metricRelabelings on every relay ServiceMonitor endpoint. */
  metricRelabelings?: readonly RelabelConfig[];
  /** The chart installs the fleet-wide alert rules, which cover every MailRelay: a per-MailRelay PrometheusRule would page twice, so none is created. */
  fleetAlerts?: boolean;
  /** Base URL of the runbooks the alerts link to (the chart's alerts.runbookBaseUrl). */
  runbookBaseUrl?: string;
}

/** What a referenced Secret key is for; decides its mount path. */
export type SecretRole = 'tlsCert' | 'tlsKey' | 'authUsers' | 'smarthostUsername' | 'smarthostPassword' | 'smarthostCa' | 'dkimKey';

/** One Secret key the spec references. */
export interface SecretKeyReference {
  /** Secret name. */
  name: string;
  /** Key within the Secret. */
  key: string;
  /** What the key is used for. */
  role: SecretRole;
  /** Spec field that names the key (for validation messages). */
  field: string;
  /** Spec field that names the Secret. */
  secretField: string;
  /** The relay needs the value inline (see SecretInput.revealed) rather than as a mounted file. */
  reveal: boolean;
}

/** Every Secret key the spec references, in a fixed order (the config hash depends on it). */
export function referencedSecretKeys(spec: MailRelaySpecDefaulted): SecretKeyReference[] {
  const out: SecretKeyReference[] = [];
  if (spec.tls) {
    const name = spec.tls.secretRef.name;
    const secretField = 'spec.tls.secretRef.name';
    out.push({ name, key: 'tls.crt', role: 'tlsCert', field: secretField, secretField, reveal: false });
    out.push({ name, key: 'tls.key', role: 'tlsKey', field: secretField, secretField, reveal: false });
  }
  if (spec.auth) {
    const ref = spec.auth.usersSecretRef;
    out.push({ name: ref.name, key: ref.key, role: 'authUsers', field: 'spec.auth.usersSecretRef.key', secretField: 'spec.auth.usersSecretRef.name', reveal: false });
  }
  const creds = spec.delivery.smarthost?.credentialsSecretRef;
  if (creds) {
    const secretField = 'spec.delivery.smarthost.credentialsSecretRef.name';
    out.push({ name: creds.name, key: creds.usernameKey, role: 'smarthostUsername', field: 'spec.delivery.smarthost.credentialsSecretRef.usernameKey', secretField, reveal: true });
    out.push({ name: creds.name, key: creds.passwordKey, role: 'smarthostPassword', field: 'spec.delivery.smarthost.credentialsSecretRef.passwordKey', secretField, reveal: false });
  }
  const ca = spec.delivery.smarthost?.caSecretRef;
  if (ca) {
    out.push({ name: ca.name, key: ca.key, role: 'smarthostCa', field: 'spec.delivery.smarthost.caSecretRef.key', secretField: 'spec.delivery.smarthost.caSecretRef.name', reveal: false });
  }
  const dkim = spec.delivery.dkim;
  if (dkim) {
    out.push({ name: dkim.keySecretRef.name, key: dkim.keySecretRef.key, role: 'dkimKey', field: 'spec.delivery.dkim.keySecretRef.key', secretField: 'spec.delivery.dkim.keySecretRef.name', reveal: false });
  }
  return out;
}

/** The minimal shape of a core/v1 Secret that secretInput reads. */
export interface SecretLike {
  type?: string;
  /** base64-encoded values, as the API returns them. */
  data?: Readonly<Record<string, string>>;
  /** plain values (only in manifests; the API server folds them into data). */
  stringData?: Readonly<Record<string, string>>;
}

/** Digests a Secret for the inputs; `reveal` lists the keys whose plain values the relay config needs. */
export function secretInput(secret: SecretLike, reveal: readonly string[] = []): SecretInput {
  const values = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(secret.data ?? {})) values.set(k, Buffer.from(v, 'base64'));
  for (const [k, v] of Object.entries(secret.stringData ?? {})) values.set(k, Buffer.from(v, 'utf8'));
  const keys: Record<string, string> = {};
  const revealed: Record<string, string> = {};
  for (const k of [...values.keys()].sort()) {
    const value = values.get(k) as Buffer;
    keys[k] = createHash('sha256').update(value).digest('hex');
    if (reveal.includes(k)) revealed[k] = value.toString('utf8').trim();
  }
  const out: SecretInput = { keys };
  if (secret.type !== undefined) out.type = secret.type;
  if (Object.keys(revealed).length > 0) out.revealed = revealed;
  return out;
}
