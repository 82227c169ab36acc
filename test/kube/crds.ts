// Minimal CustomResourceDefinitions of third-party kinds the operator looks for
// through discovery (prometheus-operator's ServiceMonitor and PrometheusRule), and a
// builder for small test CRDs.
import type { ApiServer } from './apiserver.ts';
import type { KubeObject, Obj } from './types.ts';

/** Options of crd(). */
export interface CrdSpec {
  group: string;
  kind: string;
  plural: string;
  version?: string;
  scope?: 'Namespaced' | 'Cluster';
  /** openAPIV3Schema; default: an object preserving unknown fields. */
  schema?: Obj;
  status?: boolean;
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath?: string };
  shortNames?: string[];
}

/** Builds a CustomResourceDefinition object (apiextensions.k8s.io/v1) with one served storage version. */
export function crd(spec: CrdSpec): KubeObject {
  const subresources: Obj = {};
  if (spec.status) subresources.status = {};
  if (spec.scale) subresources.scale = spec.scale;
  const names: Obj = { kind: spec.kind, plural: spec.plural, singular: spec.kind.toLowerCase(), listKind: `${spec.kind}List` };
  if (spec.shortNames) names.shortNames = spec.shortNames;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${spec.plural}.${spec.group}` },
    spec: {
      group: spec.group,
      scope: spec.scope ?? 'Namespaced',
      names,
      versions: [{
        name: spec.version ?? 'v1',
        served: true,
        storage: true,
        schema: { openAPIV3Schema: spec.schema ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        ...(Object.keys(subresources).length > 0 ? { subresources } : {}),
      }],
    },
  };
}

const PRESERVE: Obj = {
  type: 'object',
  properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
};

/** monitoring.coreos.com/v1 ServiceMonitor, schema reduced to "spec: anything". */
export function serviceMonitorCrd(): KubeObject {
  return crd({ group: 'monitoring.coreos.com', kind: 'ServiceMonitor', plural: 'servicemonitors', shortNames: ['smon'], schema: PRESERVE });
}

/** monitoring.coreos.com/v1 PrometheusRule, schema reduced to "spec: anything". */
export function prometheusRuleCrd(): KubeObject {
  return crd({ group: 'monitoring.coreos.com', kind: 'PrometheusRule', plural: 'prometheusrules', shortNames: ['promrule'], schema: PRESERVE });
}

/** Installs the ServiceMonitor and PrometheusRule CRDs, as if prometheus-operator were deployed. */
export function installPrometheusOperatorCrds(server: ApiServer): void {
  for (const c of [serviceMonitorCrd(), prometheusRuleCrd()]) {
    if (!server.get('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', undefined, c.metadata.name ?? '')) {
      server.create(c, { fieldManager: 'prometheus-operator' });
    }
  }
}
