// The KEDA ScaledObject (spec.autoscaling.mode keda; docs/adr/0009-autoscaling.md). KEDA's
// HPA scales the MailRelay through its scale subresource (spec.replicas), on two
// Prometheus triggers over the relays' own metrics, the same signals as the operator's
// autoscaler: queued messages per pod (AverageValue: the HPA divides by the pods), and the
// age of the oldest queued message (Value: more pods only when it is behind). Scale-downs
// are slowed to one pod per window (the HPA's behavior) and, whatever KEDA asks, the
// operator removes a pod only once it has drained (ADR 0003).
import type { MailRelayInputs } from '../api/inputs.ts';
import { withDefaults, type MailRelay } from '../api/mailrelay.ts';
import { childMeta, type KubeObject } from './meta.ts';
import { childNames } from './names.ts';
import { API_VERSION, KIND } from '../api/mailrelay.ts';

/** The PromQL label selector of one MailRelay's relay series (the ServiceMonitor adds `mailrelay`; docs/monitoring.md). */
export function relaySeriesSelector(mr: Pick<MailRelay, 'metadata'>): string {
  return `namespace="${mr.metadata.namespace ?? ''}", mailrelay="${mr.metadata.name}"`;
}

/** The ScaledObject, or undefined unless autoscaling.mode is keda and the cluster serves keda.sh/v1alpha1 ScaledObjects. */
export function buildScaledObject(mr: MailRelay, inputs: Pick<MailRelayInputs, 'capabilities'>): KubeObject | undefined {
  const a = withDefaults(mr.spec).autoscaling;
  if (a?.mode !== 'keda' || !a.keda || !inputs.capabilities?.scaledObject) return undefined;
  const sel = relaySeriesSelector(mr);
  const auth = a.keda.authenticationRef ? { authenticationRef: { name: a.keda.authenticationRef.name } } : {};
  const window = a.scaleDownStabilizationSeconds;
  return {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: childMeta(mr, childNames(mr).scaledObject),
    spec: {
      // The MailRelay itself, not its StatefulSet: KEDA's HPA writes spec.replicas through
      // the scale subresource, and the operator drains before the StatefulSet shrinks.
      scaleTargetRef: { apiVersion: API_VERSION, kind: KIND, name: mr.metadata.name },
      minReplicaCount: a.minReplicas,
      maxReplicaCount: a.maxReplicas,
      pollingInterval: a.keda.pollingIntervalSeconds,
      cooldownPeriod: Math.max(window, 1),
      advanced: {
        horizontalPodAutoscalerConfig: {
          behavior: {
            scaleUp: { stabilizationWindowSeconds: a.scaleUpStabilizationSeconds },
            // One pod per window: each removal is a drain (ADR 0003), and a burst right after
            // must not find several pods holding at once.
            scaleDown: { stabilizationWindowSeconds: window, policies: [{ type: 'Pods', value: 1, periodSeconds: Math.max(window, 15) }] },
          },
        },
      },
      triggers: [
        {
          type: 'prometheus', name: 'queued-per-pod', metricType: 'AverageValue', ...auth,
          metadata: {
            serverAddress: a.keda.serverAddress,
            query: `sum(mailrelay_queue_messages{state="queued", ${sel}})`,
            threshold: String(a.targetQueuePerReplica),
          },
        },
        {
          type: 'prometheus', name: 'oldest-queued-age', metricType: 'Value', ...auth,
          metadata: {
            serverAddress: a.keda.serverAddress,
            query: `max(mailrelay_queue_oldest_queued_message_age_seconds{${sel}})`,
            threshold: String(a.targetOldestAgeSeconds),
          },
        },
      ],
    },
  };
}
