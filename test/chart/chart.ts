// Shared paths and renders of the mailrelay-operator chart for the chart tests.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { helmTemplateObjects } from '../helpers/helm.ts';
import type { HelmTemplateOptions, KubeObject } from '../helpers/helm.ts';

/** Repository root. */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The chart directory. */
export const CHART = join(REPO, 'charts', 'mailrelay-operator');
/** The top-level CRDs, which the chart's crds/ must copy byte for byte. */
export const TOP_CRDS = join(REPO, 'crds');
/** Runbooks the alerts link to. */
export const RUNBOOKS = join(REPO, 'docs', 'runbooks');

/** The API version the Prometheus Operator's kinds are served at. */
export const MONITORING_API = 'monitoring.coreos.com/v1';

/** Values turning every optional part of the chart on. */
export const ALL_ON = {
  monitoring: { serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } }, prometheusRule: { enabled: true, labels: { release: 'kube-prometheus-stack' } } },
  grafana: { dashboards: { enabled: true } },
} as const;

/** Render options: release "mr" in namespace "mail-system", plus extras. */
export function opts(extra: Partial<HelmTemplateOptions> = {}): HelmTemplateOptions {
  return { releaseName: 'mr', namespace: 'mail-system', ...extra };
}

/** Renders with every optional part on and the Prometheus Operator API available. */
export function renderAllOn(extraValues: object[] = []): Promise<KubeObject[]> {
  return helmTemplateObjects(CHART, opts({ values: [ALL_ON, ...extraValues], apiVersions: [MONITORING_API] }));
}

/** A Prometheus rule group. */
export interface RuleGroup {
  name: string;
  rules: { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[];
}

/** The rule groups of the rendered PrometheusRule (a Prometheus rule file body). */
export async function renderRuleGroups(extraValues: object[] = []): Promise<RuleGroup[]> {
  const objects = await renderAllOn(extraValues);
  const rule = objects.find((o) => o.kind === 'PrometheusRule');
  if (!rule) throw new Error('the chart rendered no PrometheusRule');
  return (rule.spec as { groups: RuleGroup[] }).groups;
}
