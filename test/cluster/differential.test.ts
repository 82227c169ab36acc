// The same request sequence against the in-repo fake (test/kube) and the real
// kube-apiserver, compared on what the operator relies on: status codes and reasons,
// server-side apply creating and no-op semantics, what is stored (quantities
// canonicalised, empty lists and maps dropped), CEL and OpenAPI refusals, optimistic
// concurrency, SSA conflicts, orphaning deletes, field selectors. Where the two differ
// on something the operator relies on, the fake is fixed; test/kube/README.md lists
// what this test found.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startApiServer, type ApiServer } from '../kube/apiserver.ts';
import { startControlPlane, REPO, type ControlPlane } from './control-plane.ts';
import { eventually } from './harness.ts';

type Obj = any; // eslint-disable-line @typescript-eslint/no-explicit-any
interface Req { method?: string; path: string; body?: unknown; contentType?: string }
type Send = (r: Req) => Promise<{ status: number; body: Obj }>;

const APPLY = 'application/apply-patch+yaml';
const MERGE = 'application/merge-patch+json';
const ns = 'diff';
const cm = (data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: ns }, data });
const sts = {
  apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's', namespace: ns },
  spec: {
    replicas: 1, serviceName: 's', selector: { matchLabels: { app: 's' } },
    template: {
      metadata: { labels: { app: 's' } },
      spec: {
        tolerations: [], nodeSelector: {},
        containers: [{ name: 'c', image: 'i', args: [], resources: { requests: { cpu: '0.5', memory: '1.5Gi' }, limits: { memory: '2048Mi' } } }],
      },
    },
  },
};
const relay = (name: string, spec: object) => ({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name, namespace: ns }, spec });

/** Each step: a request, and what of the answer is compared. */
const STEPS: { name: string; req: (prev: Record<string, Obj>) => Req; pick: (res: { status: number; body: Obj }) => unknown }[] = [
  { name: 'create namespace', req: () => ({ method: 'POST', path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } }), pick: (r) => r.status },
  { name: 'SSA creates a ConfigMap: 201', req: () => ({ method: 'PATCH', path: `/api/v1/namespaces/${ns}/configmaps/c?fieldManager=op`, body: cm({ a: '1' }), contentType: APPLY }), pick: (r) => [r.status, r.body.data] },
  { name: 'the same apply again: 200, resourceVersion unchanged', req: () => ({ method: 'PATCH', path: `/api/v1/namespaces/${ns}/configmaps/c?fieldManager=op`, body: cm({ a: '1' }), contentType: APPLY }), pick: (r) => r.status },
  { name: 'apply without fieldManager: 422', req: () => ({ method: 'PATCH', path: `/api/v1/namespaces/${ns}/configmaps/c`, body: cm({ a: '2' }), contentType: APPLY }), pick: (r) => [r.status, r.body.reason] },
  { name: 'a second manager changing an owned field without force: 409 conflict', req: () => ({ method: 'PATCH', path: `/api/v1/namespaces/${ns}/configmaps/c?fieldManager=other`, body: cm({ a: '2' }), contentType: APPLY }), pick: (r) => [r.status, r.body.reason, r.body.details?.causes?.map((c: Obj) => [c.reason, c.field])] },
  { name: 'GET of a missing object: 404 NotFound', req: () => ({ path: `/api/v1/namespaces/${ns}/configmaps/missing` }), pick: (r) => [r.status, r.body.reason, r.body.details] },
  {
    name: 'SSA of a StatefulSet: quantities canonicalised, empty lists and maps dropped',
    req: () => ({ method: 'PATCH', path: `/apis/apps/v1/namespaces/${ns}/statefulsets/s?fieldManager=op`, body: sts, contentType: APPLY }),
    pick: (r) => {
      const pod = r.body.spec.template.spec;
      return [r.status, pod.containers[0].resources, 'tolerations' in pod, 'nodeSelector' in pod, 'args' in pod.containers[0]];
    },
  },
  { name: 'merge patch of a missing object: 404', req: () => ({ method: 'PATCH', path: `/api/v1/namespaces/${ns}/configmaps/nope`, body: { data: { a: '1' } }, contentType: MERGE }), pick: (r) => [r.status, r.body.reason] },
  { name: 'create a MailRelay', req: () => ({ method: 'POST', path: `/apis/mailrelay.io/v1alpha1/namespaces/${ns}/mailrelays`, body: relay('r', { replicas: 1, relayNetworks: ['10.0.0.0/8'] }) }), pick: (r) => [r.status, r.body.spec.replicas, r.body.spec.drainTimeout] },
  {
    name: 'MailRelay: maxAge below the last retry delay (duration() CEL)',
    req: () => ({ method: 'POST', path: `/apis/mailrelay.io/v1alpha1/namespaces/${ns}/mailrelays`, body: relay('d1', { delivery: { retry: { schedule: ['2h'], maxAge: '90m' } } }) }),
    pick: (r) => [r.status, r.body.reason, r.body.details?.causes?.map((c: Obj) => c.field)],
  },
  {
    name: 'MailRelay: grace period not above drainTimeout (duration() CEL)',
    req: () => ({ method: 'POST', path: `/apis/mailrelay.io/v1alpha1/namespaces/${ns}/mailrelays`, body: relay('d2', { drainTimeout: '2m', terminationGracePeriodSeconds: 90 }) }),
    pick: (r) => [r.status, r.body.reason, r.body.details?.causes?.map((c: Obj) => c.field)],
  },
  {
    name: 'MailRelay: a bare IP where a CIDR is needed (pattern)',
    req: () => ({ method: 'POST', path: `/apis/mailrelay.io/v1alpha1/namespaces/${ns}/mailrelays`, body: relay('d3', { service: { type: 'LoadBalancer', loadBalancerSourceRanges: ['192.0.2.1'] } }) }),
    pick: (r) => [r.status, r.body.reason, r.body.details?.causes?.map((c: Obj) => c.field)],
  },
  {
    name: 'status PUT with a stale resourceVersion: 409',
    req: () => ({ method: 'PUT', path: `/apis/mailrelay.io/v1alpha1/namespaces/${ns}/mailrelays/r/status`, body: { ...relay('r', { replicas: 1, relayNetworks: ['10.0.0.0/8'] }), metadata: { name: 'r', namespace: ns, resourceVersion: '1' }, status: { replicas: 1 } } }),
    pick: (r) => [r.status, r.body.reason],
  },
  { name: 'field selector metadata.name on a list', req: () => ({ path: `/api/v1/namespaces/${ns}/configmaps?fieldSelector=metadata.name%3Dc` }), pick: (r) => [r.status, r.body.items.map((o: Obj) => o.metadata.name)] },
  { name: 'an unsupported field selector: 400', req: () => ({ path: `/api/v1/namespaces/${ns}/configmaps?fieldSelector=data.a%3D1` }), pick: (r) => [r.status, r.body.reason] },
  {
    name: 'a NetworkPolicy with except outside cidr: 422 naming the field',
    req: () => ({
      method: 'PATCH', path: `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/n?fieldManager=op`, contentType: APPLY,
      body: { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'n', namespace: ns }, spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['192.168.0.0/16'] } }] }] } },
    }),
    pick: (r) => [r.status, r.body.reason, r.body.details?.causes?.map((c: Obj) => c.field)],
  },
];

describe('differential: the fake API server and the real one answer the operator alike', { timeout: 600_000 }, () => {
  let fake: ApiServer;
  let real: ControlPlane;
  before(async () => {
    fake = await startApiServer();
    real = await startControlPlane();
    const crd = parse(readFileSync(join(REPO, 'crds', 'mailrelay.io_mailrelays.yaml'), 'utf8'));
    fake.create(crd);
    await real.request('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { method: 'POST', body: crd });
    await eventually('the CRD served', async () => (await real.request(`/apis/mailrelay.io/v1alpha1/namespaces/default/mailrelays`)).status === 200, 60_000);
  });
  after(async () => {
    await fake?.close();
    await real?.close();
  });

  const sendFake: Send = async (r) => {
    const res = await fetch(`${fake.url}${r.path}`, {
      method: r.method ?? 'GET',
      headers: { accept: 'application/json', ...(r.body !== undefined ? { 'content-type': r.contentType ?? 'application/json' } : {}) },
      ...(r.body !== undefined ? { body: JSON.stringify(r.body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const sendReal: Send = async (r) => {
    const res = await real.request(r.path, { ...(r.method ? { method: r.method } : {}), ...(r.body !== undefined ? { body: r.body } : {}), ...(r.contentType ? { contentType: r.contentType } : {}) });
    return res;
  };

  it('answers every step of the sequence alike', async () => {
    const diffs: string[] = [];
    const prev: Record<string, Obj> = {};
    for (const step of STEPS) {
      const [a, b] = [await sendFake(step.req(prev)), await sendReal(step.req(prev))];
      const [pa, pb] = [step.pick(a), step.pick(b)];
      try {
        assert.deepEqual(pa, pb);
      } catch {
        diffs.push(`${step.name}:\n  fake: ${JSON.stringify(pa)}\n  real: ${JSON.stringify(pb)}${a.status >= 400 || b.status >= 400 ? `\n  fake message: ${a.body?.message}\n  real message: ${b.body?.message}` : ''}`);
      }
      prev[step.name] = b.body;
    }
    assert.deepEqual(diffs, []);
  });

  it('a no-op apply keeps the resourceVersion on both', async () => {
    for (const send of [sendFake, sendReal]) {
      const one = await send({ method: 'PATCH', path: `/api/v1/namespaces/${ns}/configmaps/noop?fieldManager=op`, body: { ...cm({ x: '1' }), metadata: { name: 'noop', namespace: ns } }, contentType: APPLY });
      const two = await send({ method: 'PATCH', path: `/api/v1/namespaces/${ns}/configmaps/noop?fieldManager=op`, body: { ...cm({ x: '1' }), metadata: { name: 'noop', namespace: ns } }, contentType: APPLY });
      assert.equal(two.body.metadata.resourceVersion, one.body.metadata.resourceVersion);
    }
  });
});
