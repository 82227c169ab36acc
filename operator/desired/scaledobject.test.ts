// The KEDA ScaledObject of spec.autoscaling.mode keda: only when KEDA is installed; it
// scales the MailRelay (the scale subresource, so the operator still drains first) on the
// relay's queue metrics, one pod per window down.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MailRelay, MailRelaySpec } from '../api/mailrelay.ts';
import { deepFreeze } from '../../test/helpers/desired-fixtures.ts';
import { buildScaledObject } from './scaledobject.ts';

const relay = (spec: MailRelaySpec): MailRelay => deepFreeze({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'relay', namespace: 'mail', uid: 'u1' }, spec });
const KEDA = { capabilities: { scaledObject: true } };
const keda = (extra: object = {}): MailRelaySpec => ({
  relayNetworks: ['10.0.0.0/8'],
  autoscaling: { mode: 'keda', minReplicas: 2, maxReplicas: 6, targetQueuePerReplica: 800, targetOldestAgeSeconds: 90, scaleDownStabilizationSeconds: 120, keda: { serverAddress: 'http://prometheus.monitoring:9090', ...extra } },
});

describe('buildScaledObject', () => {
  it('renders nothing without KEDA, without autoscaling, or in mode operator', () => {
    assert.equal(buildScaledObject(relay(keda()), { capabilities: {} }), undefined, 'keda.sh CRDs not installed');
    assert.equal(buildScaledObject(relay({ relayNetworks: ['10.0.0.0/8'] }), KEDA), undefined);
    assert.equal(buildScaledObject(relay({ relayNetworks: ['10.0.0.0/8'], autoscaling: { maxReplicas: 3 } }), KEDA), undefined);
  });

  it('targets the MailRelay\'s scale subresource with Prometheus triggers on the relay\'s queue metrics', () => {
    const so = buildScaledObject(relay(keda({ authenticationRef: { name: 'prom-auth' } })), KEDA);
    assert.ok(so);
    assert.equal(so.apiVersion, 'keda.sh/v1alpha1');
    assert.equal(so.metadata.ownerReferences?.[0]?.uid, 'u1', 'goes with the MailRelay');
    const spec = so.spec as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(spec.scaleTargetRef, { apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', name: 'relay' });
    assert.equal(spec.minReplicaCount, 2);
    assert.equal(spec.maxReplicaCount, 6);
    assert.deepEqual(spec.triggers.map((t: any) => [t.name, t.metricType, t.metadata.query, t.metadata.threshold, t.authenticationRef?.name]), [ // eslint-disable-line @typescript-eslint/no-explicit-any
      ['queued-per-pod', 'AverageValue', 'sum(mailrelay_queue_messages{state="queued", namespace="mail", mailrelay="relay"})', '800', 'prom-auth'],
      ['oldest-queued-age', 'Value', 'max(mailrelay_queue_oldest_queued_message_age_seconds{namespace="mail", mailrelay="relay"})', '90', 'prom-auth'],
    ]);
    for (const t of spec.triggers) assert.equal(t.metadata.serverAddress, 'http://prometheus.monitoring:9090');
    assert.deepEqual(spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown, { stabilizationWindowSeconds: 120, policies: [{ type: 'Pods', value: 1, periodSeconds: 120 }] }, 'one pod per window');
  });
});
