// Generates the MailRelay CustomResourceDefinition from schema.ts and rules.ts, so the
// CRD and the TypeScript types cannot drift. crds/mailrelay.io_mailrelays.yaml is this
// file's output, checked in; crd.test.ts fails when the two differ. Regenerate with:
//   npx tsx operator/api/crd.ts > crds/mailrelay.io_mailrelays.yaml
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';
import { GROUP, KIND, PLURAL, VERSION } from './mailrelay.ts';
import { CROSS_FIELD_RULES, type RuleScope } from './rules.ts';
import { MailRelaySpecSchema, MailRelayStatusSchema } from './schema.ts';
import { toStructural, type JsonSchema } from './json-schema.ts';

/** Path of the checked-in CRD, relative to the repository root. */
export const CRD_FILE = 'crds/mailrelay.io_mailrelays.yaml';

function nodeAt(root: JsonSchema, scope: RuleScope): JsonSchema {
  let node = root;
  for (const part of scope === '' ? [] : scope.split('.')) {
    const next = node.properties?.[part];
    if (!next) throw new Error(`rules.ts: no schema node at "${scope}"`);
    node = next;
  }
  return node;
}

/** The openAPIV3Schema of MailRelay: spec and status from schema.ts, CEL rules from rules.ts. */
export function buildOpenApiSchema(): JsonSchema {
  const spec = toStructural(MailRelaySpecSchema);
  spec.default = {};
  const status = toStructural(MailRelayStatusSchema);
  const conditions = status.properties?.conditions;
  if (conditions) {
    conditions['x-kubernetes-list-type'] = 'map';
    conditions['x-kubernetes-list-map-keys'] = ['type'];
  }
  const ordinals = status.properties?.scaleDown?.properties?.drainingOrdinals;
  if (ordinals) ordinals['x-kubernetes-list-type'] = 'set';
  const root: JsonSchema = {
    type: 'object',
    description: 'MailRelay is a managed outbound SMTP relay: a StatefulSet of relay pods, each with a durable spool volume.',
    properties: {
      apiVersion: { type: 'string', description: 'APIVersion defines the versioned schema of this representation of an object.' },
      kind: { type: 'string', description: 'Kind is a string value representing the REST resource this object represents.' },
      // Only `type: object` (and name/generateName constraints): the API server refuses a CRD
      // whose metadata schema says anything else, a description included.
      // name's maxLength (the API server's own limit) bounds the cost of the name-fits CEL rule.
      metadata: { type: 'object', properties: { name: { type: 'string', maxLength: 253 } } },
      spec,
      status,
    },
  };
  for (const rule of CROSS_FIELD_RULES) {
    const node = nodeAt(root, rule.at);
    const list = (node['x-kubernetes-validations'] ??= []) as Record<string, string>[];
    const entry: Record<string, string> = { rule: rule.cel, message: rule.message };
    if (rule.fieldPath) entry.fieldPath = rule.fieldPath;
    list.push(entry);
  }
  return root;
}

/** The MailRelay CustomResourceDefinition. */
export function buildCrd(): V1CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${PLURAL}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'mailrelay', 'app.kubernetes.io/part-of': 'mailrelay' },
    },
    spec: {
      group: GROUP,
      names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: 'mailrelay', shortNames: ['mr'], categories: ['mail'] },
      scope: 'Namespaced',
      versions: [{
        name: VERSION,
        served: true,
        storage: true,
        subresources: {
          status: {},
          scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
        },
        additionalPrinterColumns: [
          { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', description: 'whether the relay takes mail at the requested scale' },
          { name: 'Replicas', type: 'integer', jsonPath: '.status.desiredReplicas', description: 'relay pods the operator aims for: spec.replicas, or the autoscaler\'s choice' },
          { name: 'Ready-Replicas', type: 'integer', jsonPath: '.status.readyReplicas', description: 'relay pods ready to accept mail' },
          { name: 'Queue', type: 'integer', jsonPath: '.status.queue.messages', description: 'messages in the relay pods\' spools (queued and deferred)' },
          { name: 'Oldest', type: 'date', jsonPath: '.status.queue.oldestMessageTime', description: 'age of the oldest message in any spool' },
          { name: 'Smarthost', type: 'string', jsonPath: '.spec.delivery.smarthost.host', description: 'where mail is relayed to (empty: MX delivery)' },
          { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason', description: 'why Ready is what it is', priority: 1 },
          { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
        ],
        schema: { openAPIV3Schema: buildOpenApiSchema() },
      }],
    },
  };
}

/** The CRD as the YAML checked in at CRD_FILE. */
export function renderCrdYaml(): string {
  return `# Generated by operator/api/crd.ts from operator/api/schema.ts and rules.ts. Do not edit.\n`
    + `# Regenerate: npx tsx operator/api/crd.ts > ${CRD_FILE}\n`
    + stringify(buildCrd(), { lineWidth: 0 });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(renderCrdYaml());
}
