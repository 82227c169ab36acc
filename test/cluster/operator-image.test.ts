// The operator from the built image, against the real control plane (issue 15: "a start
// against the real control plane"). The pod spec is the chart's Deployment as `helm install`
// put it on the real API server; the simulated kubelet (test/helpers/kubelet.ts, image
// runtime) runs it the way a node does: the image's entrypoint with the container's args, as
// the pod's user (65532) on a read-only root filesystem, its /tmp emptyDir, and what every
// node gives a pod with a service account: the projected token, ca.crt and namespace at
// /var/run/secrets/kubernetes.io/serviceaccount, and KUBERNETES_SERVICE_HOST/PORT. No
// kubeconfig: the operator must find the in-cluster credentials itself, and every request
// it makes is then judged by the chart's RBAC for its ServiceAccount. No Node runs here, and
// the MailRelay asks for a StorageClass that does not exist: its spool PVC, made by the real
// StatefulSet controller, stays Pending, which the operator must report (issue 14, healing).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1PodSpec } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { freePort } from '../peers/postfix.ts';
import { builtImage, mountImage, type MountedImage } from '../helpers/image.ts';
import { preparePod, type PodProcess, type PreparedPod } from '../helpers/kubelet.ts';
import { eventually, OPERATOR_USER, operatorRequests, RELEASE, startCluster, type ClusterEnv } from './harness.ts';

const NS = 'from-image';
const POD = 'mailrelay-mailrelay-operator-7d9f-abcde';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

describe('the operator from the image, in-cluster credentials, on the real control plane', { timeout: 900_000 }, () => {
  let env: ClusterEnv;
  let image: MountedImage;
  let pod: PreparedPod;
  let operator: PodProcess | undefined;
  let saDir: string;
  let metricsPort: number;
  const output = () => operator?.out.join('') ?? '';

  before(async () => {
    metricsPort = await freePort();
    // The pod shares the host's network here: the chart's extraArgs move /metrics off :8080.
    env = await startCluster({ chart: { values: { 'extraArgs[0]': `--metrics-addr=127.0.0.1:${metricsPort}` } } });
    env.kubectl(['create', 'namespace', NS]);
    image = await mountImage(await builtImage());
    const deploy = env.getJson(['deployment', '-n', RELEASE.namespace, '-l', 'app.kubernetes.io/component=operator']).items[0];
    const podSpec = deploy.spec.template.spec as V1PodSpec;
    // The service account volume a node projects into the pod (readable by the pod's user).
    saDir = mkdtempSync(join(tmpdir(), 'operator-sa-'));
    writeFileSync(join(saDir, 'token'), env.cp.serviceAccountToken(RELEASE.namespace, podSpec.serviceAccountName ?? ''));
    writeFileSync(join(saDir, 'ca.crt'), env.cp.ca);
    writeFileSync(join(saDir, 'namespace'), RELEASE.namespace);
    for (const f of ['token', 'ca.crt', 'namespace']) chmodSync(join(saDir, f), 0o644);
    chmodSync(saDir, 0o755);
    const api = new URL(env.cp.server);
    pod = await preparePod({
      podSpec, runtime: { kind: 'image', image }, podName: POD, namespace: RELEASE.namespace,
      data: { configMap: async () => undefined, secret: async () => undefined },
      nodeMounts: [{ hostPath: saDir, containerPath: SA_DIR }],
      nodeEnv: { KUBERNETES_SERVICE_HOST: api.hostname, KUBERNETES_SERVICE_PORT: api.port },
    });
    assert.equal(pod.container.env?.some((e) => e.name === 'KUBECONFIG'), false, 'the chart sets no KUBECONFIG');
    operator = pod.start();
  });
  after(async () => {
    if (operator && operator.child.exitCode === null && operator.child.signalCode === null) operator.child.kill('SIGKILL');
    await operator?.exited;
    pod?.remove();
    await image?.remove();
    if (saDir) rmSync(saDir, { recursive: true, force: true });
    await env?.close();
  });

  it('starts as the chart runs it, takes the Lease and answers its probes', async () => {
    const started = await eventually('the operator started line', () => output().split('\n').map((l) => {
      try { return JSON.parse(l) as { msg?: string; metrics?: string; leaderElection?: string }; } catch { return undefined; }
    }).find((l) => l?.msg === 'operator started'), 60_000)
      .catch((err: Error) => { throw new Error(`${err.message}\noperator output:\n${output().slice(-3000)}`); });
    assert.equal(started.metrics, `127.0.0.1:${metricsPort}`);
    assert.equal(started.leaderElection, `${RELEASE.namespace}/mailrelay-mailrelay-operator-leader`);
    const holder = await eventually('the Lease taken', () => {
      const h = env.getJson(['lease', '-n', RELEASE.namespace, 'mailrelay-mailrelay-operator-leader']).spec?.holderIdentity as string | undefined;
      return h?.startsWith(POD) ? h : undefined;
    }, 60_000);
    assert.ok(holder);
    // The Deployment's probes, on the port the chart's args name.
    for (const path of ['/healthz', '/readyz']) {
      const res = await eventually(`GET ${path} 200`, async () => {
        const r = await fetch(`http://127.0.0.1:${metricsPort}${path}`);
        return r.status === 200 ? r : undefined;
      }, 30_000);
      assert.equal(res.status, 200);
    }
  });

  it('reconciles a MailRelay with the service account token it found in the pod', async () => {
    const from = env.cp.audit().length;
    env.kubectl(['apply', '--server-side', '-f', '-'], stringify({
      apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'relay', namespace: NS }, spec: { replicas: 1, relayNetworks: ['10.0.0.0/8'], spool: { storageClassName: 'no-such-class' } },
    }));
    await eventually('the relay StatefulSet', () => env.getJson(['statefulsets', '-n', NS]).items.length === 1, 60_000)
      .catch((err: Error) => { throw new Error(`${err.message}\noperator output:\n${output().slice(-3000)}`); });
    const conditions = await eventually('status.conditions for generation 1', () => {
      const mr = env.getJson(['mailrelay', '-n', NS, 'relay']);
      const c = mr.status?.conditions as { type: string; status: string; reason: string; observedGeneration?: number }[] | undefined;
      return c?.some((x) => x.type === 'Progressing' && x.observedGeneration === 1) ? c : undefined;
    }, 60_000);
    assert.equal(conditions.find((c) => c.type === 'Degraded')?.status, 'False', JSON.stringify(conditions));
    // Every write came from the pod, as the chart's ServiceAccount, and none was refused.
    const writes = env.cp.audit().slice(from).filter((e) => e.objectRef?.namespace === NS && ['create', 'patch', 'update'].includes(e.verb)
      && (e.userAgent ?? '').startsWith('mailrelay-operator/'));
    assert.ok(writes.some((e) => e.objectRef?.resource === 'statefulsets'), 'the StatefulSet was written by the operator');
    for (const e of writes) {
      assert.equal(e.user.username, OPERATOR_USER, `${e.verb} ${e.objectRef?.resource}`);
      assert.ok((e.userAgent ?? '').startsWith(`mailrelay-operator/${POD}`), e.userAgent);
      assert.ok((e.responseStatus?.code ?? 0) < 400, `${e.verb} ${e.objectRef?.resource}: ${e.responseStatus?.code} ${e.responseStatus?.message}`);
    }
    const refused = operatorRequests(env.cp).filter((e) => e.responseStatus?.code === 403);
    assert.deepEqual(refused.map((e) => `${e.verb} ${e.objectRef?.resource}`), [], 'no request of the operator was forbidden');
  });

  it('a spool PVC that stays Pending is reported: Degraded StoragePending naming the StorageClass, and a Warning Event', async () => {
    // The real StatefulSet controller made the claim; no StorageClass of that name exists, so
    // it stays Pending. The operator reports it once it has been Pending PVC_PENDING_AFTER_SECONDS (120 s).
    const pvc = await eventually('the spool PVC', () => env.getJson(['pvc', '-n', NS]).items[0], 60_000);
    assert.equal(pvc.status?.phase, 'Pending');
    const degraded = await eventually('Degraded=True StoragePending', () => {
      const c = (env.getJson(['mailrelay', '-n', NS, 'relay']).status?.conditions ?? []) as { type: string; status: string; reason: string; message: string }[];
      const d = c.find((x) => x.type === 'Degraded');
      return d?.status === 'True' && d.reason === 'StoragePending' ? d : undefined;
    }, 240_000, 2000).catch((err: Error) => { throw new Error(`${err.message}\noperator output:\n${output().slice(-3000)}`); });
    assert.match(degraded.message, new RegExp(`spool PVCs ${pvc.metadata.name} have been Pending .*StorageClass no-such-class`));
    const events = env.getJson(['events', '-n', NS, '--field-selector', 'reason=StoragePending']).items as { type: string; message: string; involvedObject: { kind: string; name: string } }[];
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.equal(events[0]?.type, 'Warning');
    assert.deepEqual([events[0]?.involvedObject.kind, events[0]?.involvedObject.name], ['MailRelay', 'relay']);
    assert.equal(env.getJson(['pvc', '-n', NS]).items.length, 1, 'nothing deleted');
  });

  it('stops on SIGTERM with exit 0 and releases the Lease', async () => {
    assert.ok(operator);
    operator.child.kill('SIGTERM');
    assert.equal(await operator.exited, 0, output().slice(-2000));
    const lease = env.getJson(['lease', '-n', RELEASE.namespace, 'mailrelay-mailrelay-operator-leader']);
    assert.equal(lease.spec?.holderIdentity ?? '', '', 'released on shutdown');
  });
});
