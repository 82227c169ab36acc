// Test support shared by the operator's unit tests: the examples as MailRelay objects,
// fixed inputs, deep freezing (to prove builders never modify their input), and
// validation of built objects with kubernetes-models.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { referencedSecretKeys, secretInput, type MailRelayInputs, type SecretInput } from '../../operator/api/inputs.ts';
import { withDefaults, type MailRelay } from '../../operator/api/mailrelay.ts';
import type { KubeObject } from '../../operator/desired/meta.ts';

/** The image tests use as the operator's own. */
export const TEST_IMAGE = 'ghcr.io/mailrelay/mailrelay:0.1.0';
/** A fixed uid for MailRelays under test. */
export const TEST_UID = '6f1d5c3e-8f2a-4b7c-9d1e-0a2b3c4d5e6f';

/** Freezes an object and everything in it. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

/** All YAML documents of a file under the repository root. */
export function readDocs(path: string): Record<string, unknown>[] {
  return parseAllDocuments(readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')).map((d) => d.toJS() as Record<string, unknown>);
}

/** The MailRelay of an example file (with a uid and generation, as the API server would add) and the inputs for it. */
export function loadExample(path: string, opts: { capabilities?: boolean } = {}): { mr: MailRelay; inputs: MailRelayInputs } {
  const docs = readDocs(path);
  const raw = docs.find((d) => d.kind === 'MailRelay') as unknown as MailRelay;
  const mr: MailRelay = { ...raw, metadata: { ...raw.metadata, uid: TEST_UID, generation: 1 } };
  const secrets: Record<string, SecretInput> = {};
  const refs = referencedSecretKeys(withDefaults(mr.spec));
  for (const d of docs.filter((x) => x.kind === 'Secret')) {
    const name = (d.metadata as { name: string }).name;
    secrets[name] = secretInput(d, refs.filter((r) => r.name === name && r.reveal).map((r) => r.key));
  }
  // Secrets the example creates out of band (cert-manager, kubectl create secret): fixed stand-ins.
  const standIns = new Map<string, Record<string, string>>();
  for (const r of refs) {
    if (docs.some((d) => d.kind === 'Secret' && (d.metadata as { name: string }).name === r.name)) continue;
    standIns.set(r.name, { ...standIns.get(r.name), [r.key]: `stand-in ${r.key}` });
  }
  for (const [name, stringData] of standIns) {
    secrets[name] = secretInput({ stringData }, refs.filter((r) => r.name === name && r.reveal).map((r) => r.key));
  }
  return { mr, inputs: { secrets, defaultImage: TEST_IMAGE, capabilities: { serviceMonitor: opts.capabilities ?? false, prometheusRule: opts.capabilities ?? false } } };
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  ConfigMap,
  Service,
  StatefulSet,
  PodDisruptionBudget,
  NetworkPolicy,
};

/**
 * Validates a built object with kubernetes-models (throws on a schema violation).
 * ServiceMonitor and PrometheusRule have no model installed: their required fields are checked by hand.
 */
export function validateKubeObject(obj: KubeObject): void {
  const Model = MODELS[obj.kind];
  if (Model) {
    new Model(structuredClone(obj) as never).validate();
    return;
  }
  if (obj.kind === 'ServiceMonitor' || obj.kind === 'PrometheusRule') {
    if (obj.apiVersion !== 'monitoring.coreos.com/v1') throw new Error(`${obj.kind}: apiVersion ${obj.apiVersion}`);
    const spec = obj.spec as Record<string, unknown> | undefined;
    if (obj.kind === 'ServiceMonitor' && (!spec?.selector || !Array.isArray(spec.endpoints))) throw new Error('ServiceMonitor needs spec.selector and spec.endpoints');
    if (obj.kind === 'PrometheusRule' && !Array.isArray(spec?.groups)) throw new Error('PrometheusRule needs spec.groups');
    return;
  }
  throw new Error(`no validator for kind ${obj.kind}`);
}
