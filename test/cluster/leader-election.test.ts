// Two operator replicas against a real API server, both as the chart's ServiceAccount
// (the chart's leader-election Role: create, and get/update/patch of the one Lease):
// only the holder of the real Lease writes; when it stops it releases the Lease, the
// other takes over, and from then on only the new leader writes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { eventually, operatorRequests, RELEASE, startCluster, startOperator, type ClusterEnv, type OperatorProc } from './harness.ts';

const NS = 'le';
const TIMING = ['--lease-duration', '6', '--renew-deadline', '4', '--retry-period', '1'];

describe('two operator replicas, one real Lease', { timeout: 600_000 }, () => {
  let env: ClusterEnv;
  let a: OperatorProc;
  let b: OperatorProc;
  const lease = () => env.getJson(['lease', '-n', RELEASE.namespace, 'mailrelay-mailrelay-operator-leader']);
  const writers = (from: number) => new Set(operatorRequests(env.cp).slice(from)
    .filter((e) => ['patch', 'create', 'update', 'delete'].includes(e.verb) && e.objectRef?.resource !== 'leases')
    .map((e) => (e.userAgent ?? '').split(' ')[0]?.split('_')[0]));
  const apply = (name: string, replicas: number) => env.kubectl(['apply', '--server-side', '-f', '-'], stringify({
    apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name, namespace: NS }, spec: { replicas, relayNetworks: ['10.0.0.0/8'] },
  }));

  before(async () => {
    env = await startCluster();
    env.kubectl(['create', 'namespace', NS]);
    a = startOperator(env, 'operator-a', TIMING);
    b = startOperator(env, 'operator-b', TIMING);
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await env?.close();
  });

  it('only the Lease holder writes', async () => {
    const holder = await eventually('a leader', () => lease().spec?.holderIdentity as string | undefined, 60_000);
    const from = operatorRequests(env.cp).length;
    apply('one', 1);
    await eventually('children of one', () => env.getJson(['statefulsets', '-n', NS]).items.length === 1, 60_000);
    await new Promise((r) => setTimeout(r, 3000));
    const who = writers(from);
    assert.deepEqual([...who], [`mailrelay-operator/${holder.split('_')[0]}`], `writers: ${[...who].join(', ')}`);
  });

  it('the leader stops and releases the Lease; the other takes over and alone writes', async () => {
    const holder = lease().spec.holderIdentity as string;
    const [leader, other] = holder.startsWith('operator-a') ? [a, b] : [b, a];
    assert.equal(await leader.stop(), 0, leader.output().slice(-2000));
    const next = await eventually('a new leader', () => {
      const h = lease().spec?.holderIdentity as string | undefined;
      return h && h !== holder ? h : undefined;
    }, 60_000);
    assert.ok(next.startsWith(other === a ? 'operator-a' : 'operator-b'));
    const from = operatorRequests(env.cp).length;
    apply('two', 1);
    await eventually('children of two', () => env.getJson(['statefulsets', '-n', NS]).items.length === 2, 60_000);
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual([...writers(from)], [`mailrelay-operator/${next.split('_')[0]}`]);
  });
});
