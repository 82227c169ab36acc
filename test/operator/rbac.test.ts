// The chart's RBAC must allow every request the operator really makes, or the operator
// fails in a real cluster with 403s the test API server (which enforces no RBAC) never
// shows. The operator runs as the chart deploys it (cluster-wide, leader election with
// the Lease the chart names, in the release namespace) through a tour of everything it
// does: create, status, Events (created and aggregated), Secret reads and the drain-token
// Secret's creation, a deleted child,
// an invalid spec, monitoring objects, pruning, a drained and an Immediate scale-down
// (pods, PVC flags). Then the request log is checked against the rendered rules.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { httpRelayPodClient } from '../../operator/controller/relay-client.ts';
import { findObject, helmTemplateObjects, type KubeObject as ChartObject } from '../helpers/helm.ts';
import { installPrometheusOperatorCrds } from '../kube/crds.ts';
import { uncoveredRequests, type PolicyRule } from '../kube/rbac.ts';
import { waitFor } from '../kube/testutil.ts';
import type { RequestLogEntry } from '../kube/types.ts';
import { CHART, opts } from '../chart/chart.ts';
import { allows, formatRule, rbacRulesFromChart, requestFromLog, unusedRules } from '../chart/rbac.ts';
import {
  createMailRelay, createNamespace, eventsFor, MERGE, minimalSpec, patchMailRelaySpec, startTestCluster, startTestOperator,
  waitForCondition, type TestCluster, type TestOperator,
} from './harness.ts';

/** The operator's requests: everything it sent with its User-Agent, plus the informers' watches (client-node's Watch sends its own). */
export function operatorRequests(log: readonly RequestLogEntry[]): RequestLogEntry[] {
  return log.filter((e) => (e.userAgent ?? '').startsWith('mailrelay-operator/') || e.verb === 'watch');
}

describe('the chart\'s RBAC covers what the operator does', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  let chart: ChartObject[];
  let relay: http.Server;
  const relayState = { queued: 0, draining: false };
  const ns = 'mail';

  before(async () => {
    chart = await helmTemplateObjects(CHART, opts());
    const deployment = findObject(chart, 'Deployment');
    const env = ((deployment.spec as { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } }).template.spec.containers[0]?.env ?? []);
    const leaseName = env.find((e) => e.name === 'LEADER_ELECTION_LEASE_NAME')?.value ?? assert.fail('the chart names no Lease');
    relay = http.createServer((req, res) => {
      if (req.url === '/metrics') res.end(`mailrelay_queue_messages{state="queued"} ${relayState.queued}\nmailrelay_draining ${relayState.draining ? 1 : 0}\n`);
      else if (req.method === 'POST') { relayState.draining = true; res.writeHead(202).end(); }
      else if (req.method === 'DELETE') { relayState.draining = false; res.end(); }
      else res.writeHead(404).end(); // GET /status: this stand-in has no queue document
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
    const port = (relay.address() as AddressInfo).port;

    cluster = await startTestCluster();
    createNamespace(cluster, ns);
    createNamespace(cluster, 'mail-system');
    installPrometheusOperatorCrds(cluster.server);
    op = await startTestOperator(cluster, {
      leaderElection: { namespace: 'mail-system', name: leaseName, leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 200 },
      relayPods: httpRelayPodClient({ baseUrl: () => `http://127.0.0.1:${port}` }),
    });
  });
  after(async () => {
    await op.stop();
    await cluster.close();
    relay.closeAllConnections();
    await new Promise((r) => relay.close(r));
  });

  it('tour: everything the operator does', async () => {
    await cluster.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'users' }, stringData: { users: 'app:$2b$10$/cxA/h56p3p6YJVw6CjvheDflgMtS/3GhGOwXq11WQ9FImT70IvPq\n' } } });
    await createMailRelay(cluster, ns, 'relay', minimalSpec({
      replicas: 2, auth: { usersSecretRef: { name: 'users' }, requireTLS: false },
      networkPolicy: { enabled: true }, monitoring: { prometheusRule: { enabled: true } },
    }));
    await waitFor('children', () => cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns }));
    await waitFor('ServiceMonitor', () => cluster.server.get('monitoring.coreos.com', 'v1', 'servicemonitors', ns, 'relay'));
    await cluster.core.deleteNamespacedConfigMap({ name: 'relay-config', namespace: ns });
    await waitFor('ConfigMap back', () => cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns }));

    // Invalid twice with the same problem: the second Warning is aggregated (an Event PATCH).
    await patchMailRelaySpec(cluster, ns, 'relay', { relayNetworks: ['bad'] });
    await waitForCondition(cluster, ns, 'relay', 'Degraded', 'True', 'InvalidSpec');
    await patchMailRelaySpec(cluster, ns, 'relay', { logLevel: 'debug' });
    await waitFor('the Warning aggregated', async () => (await eventsFor(cluster, ns, 'relay')).some((e) => e.reason === 'InvalidSpec' && (e.count ?? 0) >= 2));
    await patchMailRelaySpec(cluster, ns, 'relay', { relayNetworks: ['10.0.0.0/8'], networkPolicy: { enabled: false }, monitoring: { serviceMonitor: { enabled: false }, prometheusRule: { enabled: false } } });
    await waitFor('pruned', () => !cluster.server.get('monitoring.coreos.com', 'v1', 'servicemonitors', ns, 'relay') && !cluster.server.get('networking.k8s.io', 'v1', 'networkpolicies', ns, 'relay'));

    // Scale-down: a drained one, then an Immediate one that flags and unflags a PVC.
    const labels = { 'app.kubernetes.io/component': 'relay', 'app.kubernetes.io/instance': 'relay', 'app.kubernetes.io/name': 'mailrelay' };
    cluster.server.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'relay-1', namespace: ns, labels }, spec: { containers: [{ name: 'relay', image: 'x' }] } });
    await cluster.core.patchNamespacedPodStatus({ name: 'relay-1', namespace: ns, body: { status: { phase: 'Running', podIP: '127.0.0.1' } } }, MERGE);
    cluster.server.create({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'spool-relay-1', namespace: ns, labels }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } });
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 1 });
    await waitFor('drained down to 1', async () => (await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns })).spec?.replicas === 1);
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 2 });
    await waitFor('back to 2', async () => (await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns })).spec?.replicas === 2);
    relayState.queued = 3;
    relayState.draining = false;
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 1, scaleDown: { policy: 'Immediate' } });
    await waitForCondition(cluster, ns, 'relay', 'Degraded', 'True', 'SpoolNotDrained');
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 2 });
    await waitForCondition(cluster, ns, 'relay', 'Degraded', 'False');
  });

  it('every request is allowed by the rendered RBAC (namespaces included)', () => {
    const requests = operatorRequests(cluster.server.requestLog);
    assert.ok(requests.length > 50, `${requests.length} requests`);
    const did = (verb: string, resource: string) => requests.some((e) => e.verb === verb && e.resource === resource);
    assert.ok(did('create', 'secrets'), 'the tour created the drain-token Secret');
    assert.ok(did('patch', 'persistentvolumeclaims'), 'the tour flagged a spool PVC');
    const policy = chart.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').flatMap((o) => (o as unknown as { rules: PolicyRule[] }).rules);
    assert.deepEqual(uncoveredRequests(requests, policy), []);
    const rules = rbacRulesFromChart(chart);
    const denied = requests.map(requestFromLog).filter((r) => r !== null).filter((r) => !allows(rules, r))
      .map((r) => `${r.verb} ${r.resource} ${r.namespace ?? '(cluster)'}${r.name ? ` ${r.name}` : ''}`);
    assert.deepEqual([...new Set(denied)], []);
    // Least privilege is the chart's own test; listed here for whoever reads the output.
    const unused = unusedRules(rules, requests.map(requestFromLog).filter((r) => r !== null)).map(formatRule);
    if (unused.length > 0) process.stdout.write(`# grants the tour did not use: ${unused.join('; ')}\n`);
  });
});
