// ADR 0003, the operator's part: a scale-down never removes a relay pod whose spool may
// still hold mail. The pods above spec.replicas are told to drain (and to hold), the
// StatefulSet shrinks one ordinal at a time from the top as each spool is seen empty,
// a scale-up cancels the drain, and Immediate shrinks at once but flags the PVCs it
// could not prove empty (Degraded=SpoolNotDrained) until their pods run again.
// The relay pods are stand-ins: a small HTTP server per pod speaking the relay's
// /metrics and /drain (bearer token required, as from another host), since the test
// API server runs no kubelet.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { httpRelayPodClient } from '../../operator/controller/relay-client.ts';
import { SPOOL_STATE_ANNOTATION } from '../../operator/controller/reconcile.ts';
import { waitFor } from '../kube/testutil.ts';
import {
  conditionOf, createMailRelay, createNamespace, eventsFor, getMailRelay, MERGE, minimalSpec, patchMailRelaySpec,
  startTestCluster, startTestOperator, waitForCondition, type TestCluster, type TestOperator,
} from './harness.ts';

/** A relay pod's HTTP side as the operator sees it: queue depth, draining, /drain. */
class FakeRelay {
  queued = 0;
  deferred = 0;
  draining = false;
  readonly calls: string[] = [];
  private server!: http.Server;
  port = 0;

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      this.calls.push(`${req.method} ${req.url}`);
      if (req.method === 'GET' && req.url === '/metrics') {
        res.end([
          '# TYPE mailrelay_queue_messages gauge',
          `mailrelay_queue_messages{state="queued"} ${this.queued}`,
          `mailrelay_queue_messages{state="deferred"} ${this.deferred}`,
          '# TYPE mailrelay_draining gauge',
          `mailrelay_draining ${this.draining ? 1 : 0}`,
          '',
        ].join('\n'));
        return;
      }
      if ((req.method === 'POST' || req.method === 'DELETE') && req.headers.authorization !== 'Bearer s3cret') {
        res.writeHead(403).end('forbidden: /drain needs the drain token\n');
        return;
      }
      if (req.method === 'POST' && req.url === '/drain?hold=true') {
        this.draining = true;
        res.writeHead(202).end('draining\n');
        return;
      }
      if (req.method === 'DELETE' && req.url === '/drain') {
        this.draining = false;
        res.writeHead(200).end('serving\n');
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe('scale-down without stranding mail', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  const ns = 'mail';
  const relays = new Map<string, FakeRelay>();
  const labels = { 'app.kubernetes.io/component': 'relay', 'app.kubernetes.io/instance': 'relay', 'app.kubernetes.io/name': 'mailrelay' };

  /** Plays StatefulSet controller and kubelet: a running pod and a spool PVC per ordinal. */
  const runPod = async (ordinal: number) => {
    const name = `relay-${ordinal}`;
    let relay = relays.get(name);
    if (!relay) {
      relay = new FakeRelay();
      await relay.start();
      relays.set(name, relay);
    }
    const sts = await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns });
    const owner = { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'relay', uid: sts.metadata?.uid ?? '', controller: true };
    if (!cluster.server.get('', 'v1', 'pods', ns, name)) {
      cluster.server.create({
        apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels, ownerReferences: [owner] },
        spec: { containers: [{ name: 'relay', image: 'x' }] },
      });
      // Status is a subresource: a create ignores it, as on a real API server.
      await cluster.core.patchNamespacedPodStatus({ name, namespace: ns, body: { status: { phase: 'Running', podIP: '127.0.0.1' } } }, MERGE);
    }
    if (!cluster.server.get('', 'v1', 'persistentvolumeclaims', ns, `spool-${name}`)) {
      cluster.server.create({
        apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: `spool-${name}`, namespace: ns, labels },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      });
    }
  };
  /** The StatefulSet controller removing a pod above the replicas (the PVC stays: Retain). */
  const removePod = (ordinal: number) => cluster.core.deleteNamespacedPod({ name: `relay-${ordinal}`, namespace: ns });
  const stsReplicas = async () => (await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns })).spec?.replicas;
  const waitReplicas = (n: number) => waitFor(`StatefulSet replicas ${n}`, async () => (await stsReplicas()) === n);
  const relay = (ordinal: number) => relays.get(`relay-${ordinal}`) as FakeRelay;

  before(async () => {
    cluster = await startTestCluster();
    createNamespace(cluster, ns);
    op = await startTestOperator(cluster, {
      relayPods: httpRelayPodClient({ baseUrl: (pod) => `http://127.0.0.1:${relays.get(pod.metadata.name)?.port ?? 1}`, token: () => 's3cret' }),
    });
    await createMailRelay(cluster, ns, 'relay', minimalSpec({ replicas: 3 }));
    await waitReplicas(3);
    for (const o of [0, 1, 2]) await runPod(o);
  });
  after(async () => {
    await op.stop();
    await cluster.close();
    for (const r of relays.values()) await r.close();
  });

  it('keeps the pods being removed, tells them to drain and hold, and reports them', async () => {
    relay(1).queued = 3;
    relay(2).queued = 2;
    relay(2).deferred = 2;
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 1 });
    await waitFor('pods 1 and 2 draining', () => relay(1).draining && relay(2).draining);
    assert.ok(relay(1).calls.includes('POST /drain?hold=true'));
    assert.equal(relay(0).calls.filter((c) => c.startsWith('POST')).length, 0, 'the pod that stays is left alone');
    const mr = await waitFor('status.scaleDown', async () => {
      const m = await getMailRelay(cluster, ns, 'relay');
      return m.status?.scaleDown?.queuedMessages === 7 ? m : undefined;
    });
    assert.deepEqual(mr.status?.scaleDown?.drainingOrdinals, [1, 2]);
    assert.equal(conditionOf(mr, 'Progressing')?.reason, 'DrainingForScaleDown');
    assert.equal(await stsReplicas(), 3, 'nothing removed while spools hold mail');
    await waitFor('a ScaleDownDraining event', async () => (await eventsFor(cluster, ns, 'relay')).some((e) => e.reason === 'ScaleDownDraining'));
  });

  it('removes pods from the top down, each once its spool is seen empty', async () => {
    relay(1).queued = 0; // ordinal 1 is empty first, but 2 is above it: nothing can go yet
    await waitFor('the change observed', async () => (await getMailRelay(cluster, ns, 'relay')).status?.scaleDown?.queuedMessages === 4);
    assert.equal(await stsReplicas(), 3);
    relay(2).queued = 0;
    relay(2).deferred = 0;
    await waitReplicas(1);
    await removePod(2);
    await removePod(1);
    const mr = await waitFor('scaleDown cleared', async () => {
      const m = await getMailRelay(cluster, ns, 'relay');
      return m.status?.scaleDown === undefined && m.status?.observedGeneration === m.metadata.generation ? m : undefined;
    });
    assert.notEqual(conditionOf(mr, 'Progressing')?.reason, 'DrainingForScaleDown');
    assert.equal(conditionOf(mr, 'Degraded')?.status, 'False', 'drained spools are not flagged');
    await waitFor('ScaleDownComplete', async () => (await eventsFor(cluster, ns, 'relay')).some((e) => e.reason === 'ScaleDownComplete'));
    const pvc = await cluster.core.readNamespacedPersistentVolumeClaim({ name: 'spool-relay-2', namespace: ns });
    assert.equal(pvc.metadata?.annotations?.[SPOOL_STATE_ANNOTATION], undefined);
  });

  it('a scale-up during a drain cancels it (DELETE /drain)', async () => {
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 3 });
    await waitReplicas(3);
    relay(1).draining = false;
    relay(2).draining = false;
    await runPod(1);
    await runPod(2);
    relay(2).queued = 5;
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 2 });
    await waitFor('pod 2 draining', () => relay(2).draining);
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 3 });
    await waitFor('pod 2 serving again', () => !relay(2).draining);
    assert.ok(relay(2).calls.includes('DELETE /drain'));
    await waitFor('scaleDown cleared', async () => (await getMailRelay(cluster, ns, 'relay')).status?.scaleDown === undefined);
    assert.equal(await stsReplicas(), 3);
  });

  it('Immediate: shrinks at once, flags the spools it could not prove empty, and clears them when covered again', async () => {
    relay(1).queued = 4;
    relay(2).queued = 1;
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 1, scaleDown: { policy: 'Immediate' } });
    await waitReplicas(1);
    const mr = await waitForCondition(cluster, ns, 'relay', 'Degraded', 'True', 'SpoolNotDrained');
    assert.match(conditionOf(mr, 'Degraded')?.message ?? '', /spool-relay-1, spool-relay-2/);
    for (const claim of ['spool-relay-1', 'spool-relay-2']) {
      const pvc = await cluster.core.readNamespacedPersistentVolumeClaim({ name: claim, namespace: ns });
      assert.equal(pvc.metadata?.annotations?.[SPOOL_STATE_ANNOTATION], 'unverified', claim);
    }
    await waitFor('a SpoolNotDrained warning', async () => (await eventsFor(cluster, ns, 'relay')).some((e) => e.type === 'Warning' && e.reason === 'SpoolNotDrained'));
    await removePod(2);
    await removePod(1);

    // A person checks spool-relay-2 and deletes it; scaling back to 2 covers spool-relay-1.
    await cluster.core.deleteNamespacedPersistentVolumeClaim({ name: 'spool-relay-2', namespace: ns });
    await waitFor('only spool-relay-1 listed', async () => {
      const m = await getMailRelay(cluster, ns, 'relay');
      return /spool-relay-1/.test(conditionOf(m, 'Degraded')?.message ?? '') && !/spool-relay-2/.test(conditionOf(m, 'Degraded')?.message ?? '');
    });
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 2 });
    await waitReplicas(2);
    await runPod(1);
    await waitFor('the flag removed once pod 1 runs again', async () => {
      const pvc = await cluster.core.readNamespacedPersistentVolumeClaim({ name: 'spool-relay-1', namespace: ns });
      return pvc.metadata?.annotations?.[SPOOL_STATE_ANNOTATION] === undefined;
    });
    // The annotation change is a PVC event, which brings the MailRelay back for its status.
    await waitForCondition(cluster, ns, 'relay', 'Degraded', 'False');
  });

  it('a drain timeout removes the pods anyway, flagging what was not empty', async () => {
    await patchMailRelaySpec(cluster, ns, 'relay', { scaleDown: { policy: 'Drain', timeout: '1s' } });
    relay(1).queued = 2;
    relay(1).draining = false;
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 1 });
    await waitFor('pod 1 draining', () => relay(1).draining);
    await waitReplicas(1); // after about a second, with mail still on it
    const mr = await waitForCondition(cluster, ns, 'relay', 'Degraded', 'True', 'SpoolNotDrained');
    assert.match(conditionOf(mr, 'Degraded')?.message ?? '', /spool-relay-1/);
    // (Merge-patching the annotation away by hand is how a person marks a spool as checked.)
    await cluster.core.patchNamespacedPersistentVolumeClaim({ name: 'spool-relay-1', namespace: ns, body: { metadata: { annotations: { [SPOOL_STATE_ANNOTATION]: null } } } }, MERGE);
    await waitForCondition(cluster, ns, 'relay', 'Degraded', 'False');
  });
});
