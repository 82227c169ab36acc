// The relay StatefulSet: one pod per replica, each with its own spool PVC. The pieces
// that keep mail safe (docs/adr/0003-scale-down-without-stranding-mail.md): PVCs are
// retained on scale-down and on deletion, a preStop hook drains the relay within the
// grace period, and the config hash rolls pods when their config or Secrets change.
import type { V1Container, V1PodSpec, V1PodTemplateSpec, V1ProjectedVolumeSource, V1ResourceRequirements, V1StatefulSet, V1TopologySpreadConstraint, V1VolumeProjection } from '@kubernetes/client-node';
import { referencedSecretKeys, type MailRelayInputs } from '../api/inputs.ts';
import { requestedReplicas, withDefaults, type MailRelay, type MailRelaySpecDefaulted } from '../api/mailrelay.ts';
import { parseDuration } from '../api/duration.ts';
import { CONFIG_HASH_ANNOTATION, computeConfigHash } from './config-hash.ts';
import { relayImage } from './image.ts';
import {
  CONFIG_DIR, CONFIG_KEY, DRAIN_TOKEN_KEY, DRAIN_TOKEN_PATH, DRAIN_WAIT_MARGIN_SECONDS, GRACE_MARGIN_SECONDS, HTTP_PORT, METRICS_PORT_NAME, RELAY_ARGS, RUN_AS_ID,
  SECRET_FILE_PATHS, SMTP_PORT, SMTP_PORT_NAME, SPOOL_DIR, TMP_DIR, drainCommand,
} from './layout.ts';
import { selectorLabels, sortedKeys, standardLabels } from './labels.ts';
import { childMeta, type KubeObject } from './meta.ts';
import { SPOOL_VOLUME, childNames } from './names.ts';

/** Name of the relay container. */
export const RELAY_CONTAINER = 'relay';

/** Resources used when spec.resources is unset: enough for a small relay; memory is limited because a leak must not take the node. */
export const DEFAULT_RESOURCES: Readonly<V1ResourceRequirements> = Object.freeze({
  requests: { cpu: '100m', memory: '128Mi' },
  limits: { memory: '512Mi' },
});

/** Mode of the mounted config and Secret files: owner and group (fsGroup) read only. */
const FILE_MODE = 0o440;

/** Seconds the pod gets to terminate: the spec's, or drainTimeout plus a margin for the preStop hook and exit. */
export function terminationGracePeriod(spec: MailRelaySpecDefaulted): number {
  return spec.terminationGracePeriodSeconds ?? drainSeconds(spec) + GRACE_MARGIN_SECONDS;
}

function drainSeconds(spec: MailRelaySpecDefaulted): number {
  return Math.ceil(parseDuration(spec.drainTimeout) ?? 60);
}

function resources(spec: MailRelaySpecDefaulted): V1ResourceRequirements {
  if (!spec.resources) return structuredClone(DEFAULT_RESOURCES);
  // Integers are valid quantities; Kubernetes serializes every quantity as a string.
  const strings = (m: Readonly<Record<string, string | number>> | undefined) =>
    m && sortedKeys(Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)])));
  const out: V1ResourceRequirements = {};
  const limits = strings(spec.resources.limits);
  const requests = strings(spec.resources.requests);
  if (limits) out.limits = limits;
  if (requests) out.requests = requests;
  return out;
}

function topologySpread(mr: MailRelay, spec: MailRelaySpecDefaulted): V1TopologySpreadConstraint[] {
  const ownPods = () => ({ matchLabels: selectorLabels(mr) });
  if (spec.topologySpreadConstraints) {
    return spec.topologySpreadConstraints.map((c) => ({ ...structuredClone(c), labelSelector: c.labelSelector ? structuredClone(c.labelSelector) : ownPods() }));
  }
  // Best effort by default: a relay that cannot spread should still run.
  return ['kubernetes.io/hostname', 'topology.kubernetes.io/zone'].map((topologyKey) => ({
    maxSkew: 1, topologyKey, whenUnsatisfiable: 'ScheduleAnyway', labelSelector: ownPods(),
  }));
}

/**
 * The projected volume at /etc/mailrelay: relay.yaml from the ConfigMap, each referenced
 * Secret key at its fixed path, and the drain token. The drain-token Secret is optional:
 * the controller creates it, and a pod may start first (the kubelet adds the file later).
 */
function configVolume(mr: MailRelay, spec: MailRelaySpecDefaulted): V1ProjectedVolumeSource {
  const sources: V1VolumeProjection[] = [{ configMap: { name: childNames(mr).configMap, items: [{ key: CONFIG_KEY, path: CONFIG_KEY }] } }];
  const bySecret = new Map<string, { key: string; path: string }[]>();
  for (const ref of referencedSecretKeys(spec)) {
    const items = bySecret.get(ref.name) ?? [];
    items.push({ key: ref.key, path: SECRET_FILE_PATHS[ref.role] });
    bySecret.set(ref.name, items);
  }
  for (const [name, items] of bySecret) sources.push({ secret: { name, items } });
  sources.push({ secret: { name: childNames(mr).drainTokenSecret, items: [{ key: DRAIN_TOKEN_KEY, path: DRAIN_TOKEN_PATH }], optional: true } });
  return { defaultMode: FILE_MODE, sources };
}

function relayContainer(spec: MailRelaySpecDefaulted, inputs: MailRelayInputs): V1Container {
  const container: V1Container = {
    name: RELAY_CONTAINER,
    image: relayImage(spec.image, inputs.defaultImage),
    args: [...RELAY_ARGS],
    ports: [
      { name: SMTP_PORT_NAME, containerPort: SMTP_PORT, protocol: 'TCP' },
      { name: METRICS_PORT_NAME, containerPort: HTTP_PORT, protocol: 'TCP' },
    ],
    // Recovering a large spool at start can take a while; liveness waits for it.
    startupProbe: { httpGet: { path: '/healthz', port: METRICS_PORT_NAME }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 150 },
    livenessProbe: { httpGet: { path: '/healthz', port: METRICS_PORT_NAME }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
    // /readyz turns false while draining, which takes the pod out of the client Service.
    readinessProbe: { httpGet: { path: '/readyz', port: METRICS_PORT_NAME }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2 },
    lifecycle: { preStop: { exec: { command: drainCommand(drainSeconds(spec) + DRAIN_WAIT_MARGIN_SECONDS) } } },
    resources: resources(spec),
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: RUN_AS_ID,
      runAsGroup: RUN_AS_ID,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
      { name: SPOOL_VOLUME, mountPath: SPOOL_DIR },
      { name: 'tmp', mountPath: TMP_DIR },
    ],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (spec.image?.pullPolicy) container.imagePullPolicy = spec.image.pullPolicy;
  return container;
}

function podTemplate(mr: MailRelay, spec: MailRelaySpecDefaulted, inputs: MailRelayInputs): V1PodTemplateSpec {
  const podSpec: V1PodSpec = {
    // Relays never talk to the API server; no token in the pod.
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: terminationGracePeriod(spec),
    securityContext: {
      runAsNonRoot: true,
      runAsUser: RUN_AS_ID,
      runAsGroup: RUN_AS_ID,
      fsGroup: RUN_AS_ID,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    },
    containers: [relayContainer(spec, inputs)],
    volumes: [
      { name: 'config', projected: configVolume(mr, spec) },
      { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
    ],
    topologySpreadConstraints: topologySpread(mr, spec),
  };
  if (spec.imagePullSecrets) podSpec.imagePullSecrets = spec.imagePullSecrets.map((s) => ({ name: s.name }));
  if (spec.nodeSelector) podSpec.nodeSelector = sortedKeys(spec.nodeSelector);
  if (spec.tolerations) podSpec.tolerations = structuredClone(spec.tolerations);
  if (spec.affinity) podSpec.affinity = structuredClone(spec.affinity);
  if (spec.priorityClassName) podSpec.priorityClassName = spec.priorityClassName;
  return {
    metadata: {
      labels: sortedKeys({ ...(spec.podLabels ?? {}), ...standardLabels(mr) }),
      annotations: sortedKeys({
        ...(spec.podAnnotations ?? {}),
        'kubectl.kubernetes.io/default-container': RELAY_CONTAINER,
        [CONFIG_HASH_ANNOTATION]: computeConfigHash(mr, inputs),
      }),
    },
    spec: podSpec,
  };
}

/** The relay StatefulSet. Replicas come from inputs.statefulSetReplicas (the scale-down plan) or requestedReplicas(spec). */
export function buildStatefulSet(mr: MailRelay, inputs: MailRelayInputs): KubeObject & V1StatefulSet {
  const spec = withDefaults(mr.spec);
  const names = childNames(mr);
  const claimSpec: NonNullable<V1StatefulSet['spec']>['volumeClaimTemplates'] = [{
    metadata: { name: SPOOL_VOLUME, labels: selectorLabels(mr) },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: spec.spool.size } },
      ...(spec.spool.storageClassName ? { storageClassName: spec.spool.storageClassName } : {}),
    },
  }];
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: childMeta(mr, names.statefulSet),
    spec: {
      replicas: inputs.statefulSetReplicas ?? requestedReplicas(spec),
      serviceName: names.headlessService,
      selector: { matchLabels: selectorLabels(mr) },
      // Pods do not depend on each other: start and stop them all at once.
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 0 } },
      // Retain: a scaled-down or deleted relay's spool may still hold mail (ADR 0003).
      persistentVolumeClaimRetentionPolicy: { whenScaled: 'Retain', whenDeleted: 'Retain' },
      revisionHistoryLimit: 5,
      template: podTemplate(mr, spec, inputs),
      volumeClaimTemplates: claimSpec,
    },
  };
}
