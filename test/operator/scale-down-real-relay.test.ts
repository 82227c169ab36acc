// ADR 0003 against a real relay (relay/service.ts in-process, on loopback): the operator's
// hold drain, its reading of the relay's own /metrics, and the StatefulSet shrinking only
// after a deferred message was really delivered. Then the case the hold's persistence
// creates: the pod comes back for a scale-up still holding (the DRAINING marker on its
// spool), is not Ready, and the operator must tell it to take mail again.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { httpRelayPodClient } from '../../operator/controller/relay-client.ts';
import { scrape, startTestRelay } from '../helpers/relay.ts';
import { startFaultServer, type FaultServer } from '../peers/fault-server.ts';
import { waitFor } from '../kube/testutil.ts';
import {
  createMailRelay, createNamespace, getMailRelay, MERGE, minimalSpec, patchMailRelaySpec, startTestCluster, startTestOperator,
  type TestCluster, type TestOperator,
} from './harness.ts';

type Relay = Awaited<ReturnType<typeof startTestRelay>>;

describe('scale-down with a real relay', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  let peer: FaultServer;
  let relay: Relay;
  const spoolDir = mkdtempSync(join(tmpdir(), 'mailrelay-spool-'));
  const ns = 'mail';
  const labels = { 'app.kubernetes.io/component': 'relay', 'app.kubernetes.io/instance': 'relay', 'app.kubernetes.io/name': 'mailrelay' };
  const startRelay = () => startTestRelay(peer.port, { spool: { dir: spoolDir }, delivery: { retry: { schedule: [2], jitter: 0, maxAge: 3600 } } });
  const stsReplicas = async () => (await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns })).spec?.replicas;
  const podStatus = (name: string, ready: boolean) => cluster.core.patchNamespacedPodStatus({
    name, namespace: ns, body: { status: { phase: 'Running', podIP: '127.0.0.1', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } },
  }, MERGE);
  const createPod = async (name: string, ready: boolean) => {
    cluster.server.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels }, spec: { containers: [{ name: 'relay', image: 'x' }] } });
    await podStatus(name, ready);
  };

  before(async () => {
    peer = await startFaultServer({});
    relay = await startRelay();
    cluster = await startTestCluster();
    createNamespace(cluster, ns);
    op = await startTestOperator(cluster, {
      // Pod relay-1 is the real relay; relay-0 is never asked (it stays).
      relayPods: httpRelayPodClient({ baseUrl: (pod) => (pod.metadata.name === 'relay-1' ? `http://127.0.0.1:${relay.httpPort}` : undefined) }),
    });
    await createMailRelay(cluster, ns, 'relay', minimalSpec({ replicas: 2 }));
    await waitFor('2 replicas', async () => (await stsReplicas()) === 2);
    await createPod('relay-0', true);
    await createPod('relay-1', true);
    cluster.server.create({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'spool-relay-1', namespace: ns, labels }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } });
  });
  after(async () => {
    await op.stop();
    await cluster.close();
    await relay.close();
    await peer.close();
  });

  it('holds the pod until its deferred message is delivered, then shrinks', async () => {
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, secure: false, ignoreTLS: true });
    await t.sendMail({ from: 'a@example.com', to: 'tempfail-once-b@example.net', subject: 'deferred once', text: 'x\n' });
    t.close();
    await waitFor('deferred on the relay', async () => (await scrape(relay.httpPort, 'mailrelay_queue_messages', { state: 'deferred' })) === 1);

    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 1 });
    await waitFor('the relay holds', async () => (await scrape(relay.httpPort, 'mailrelay_draining')) === 1);
    const mr = await waitFor('the operator sees the queued message', async () => {
      const m = await getMailRelay(cluster, ns, 'relay');
      return m.status?.scaleDown?.queuedMessages === 1 ? m : undefined;
    });
    assert.deepEqual(mr.status?.scaleDown?.drainingOrdinals, [1]);
    assert.equal(await stsReplicas(), 2, 'not shrunk while the spool holds mail');

    await peer.waitFor((p) => (p.deliveries().get('tempfail-once-b@example.net') ?? 0) === 1, 10_000, 'the retry delivered');
    await waitFor('shrunk once the spool is empty', async () => (await stsReplicas()) === 1, 10_000);
    assert.equal(await scrape(relay.httpPort, 'mailrelay_draining'), 1, 'the relay did not exit: it holds');
    await cluster.core.deleteNamespacedPod({ name: 'relay-1', namespace: ns });
  });

  it('a pod back for a scale-up, still holding after a restart, is told to take mail again', async () => {
    // The pod restarts (the StatefulSet removed it); its spool keeps the hold marker.
    await relay.close();
    relay = await startRelay();
    assert.equal(await scrape(relay.httpPort, 'mailrelay_draining'), 1, 'the hold survived the restart');
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 2 });
    await waitFor('2 replicas', async () => (await stsReplicas()) === 2);
    await createPod('relay-1', false); // running, not Ready: /readyz fails while it holds
    await waitFor('the hold undone', async () => (await scrape(relay.httpPort, 'mailrelay_draining')) === 0, 10_000);
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, secure: false, ignoreTLS: true });
    const info = await t.sendMail({ from: 'a@example.com', to: 'c@example.net', subject: 'accepted again', text: 'y\n' });
    t.close();
    assert.match(info.response, /^250 /);
    await peer.waitFor((p) => (p.deliveries().get('c@example.net') ?? 0) === 1, 10_000, 'delivered');
  });
});
