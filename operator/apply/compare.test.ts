import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { firstDifference, isContainedIn } from './compare.ts';

describe('desired contained in live', () => {
  it('accepts extra live fields (server defaults, status, other managers)', () => {
    const desired = { spec: { replicas: 2, template: { spec: { containers: [{ name: 'relay', image: 'i' }] } } } };
    const live = {
      metadata: { resourceVersion: '5' },
      spec: { replicas: 2, template: { spec: { containers: [{ name: 'relay', image: 'i', imagePullPolicy: 'IfNotPresent' }], dnsPolicy: 'ClusterFirst' } } },
      status: { readyReplicas: 1 },
    };
    assert.equal(isContainedIn(desired, live), true);
  });

  it('names the first field that differs or is missing', () => {
    assert.equal(firstDifference({ spec: { replicas: 2 } }, { spec: { replicas: 3 } }), 'spec.replicas');
    assert.equal(firstDifference({ data: { a: '1' } }, { data: {} }), 'data.a');
    assert.equal(firstDifference({ a: [{ x: 1 }, { x: 2 }] }, { a: [{ x: 1 }, { x: 3 }] }), 'a[1].x');
    assert.equal(firstDifference({ a: null }, { a: null }), undefined);
  });

  it('treats lists as whole: a live list with an extra item differs', () => {
    assert.equal(firstDifference({ a: [1] }, { a: [1, 2] }), 'a');
    assert.equal(firstDifference({ a: [1] }, { a: 'x' }), 'a');
  });
});

describe('what the real API server canonicalises (issue 11 point 5)', () => {
  it('compares requests, limits and sizeLimit as quantities', () => {
    const desired = { resources: { requests: { cpu: '0.5', memory: '1.5Gi' }, limits: { memory: '2048Mi' } }, emptyDir: { sizeLimit: '1Gi' } };
    const live = { resources: { requests: { cpu: '500m', memory: '1536Mi' }, limits: { memory: '2Gi' } }, emptyDir: { sizeLimit: '1024Mi' } };
    assert.equal(firstDifference(desired, live), undefined);
    assert.equal(firstDifference(desired, { ...live, resources: { ...live.resources, requests: { cpu: '400m', memory: '1536Mi' } } }), 'resources.requests.cpu');
  });

  it('does not treat other strings as quantities', () => {
    assert.equal(firstDifference({ labels: { v: '0.5' } }, { labels: { v: '500m' } }), 'labels.v');
  });

  it('matches an empty desired list or map with an absent live field, not with a different one', () => {
    assert.equal(firstDifference({ spec: { tolerations: [], nodeSelector: {} } }, { spec: {} }), undefined);
    assert.equal(firstDifference({ spec: { tolerations: [] } }, { spec: { tolerations: [{ key: 'a' }] } }), 'spec.tolerations');
  });
});
