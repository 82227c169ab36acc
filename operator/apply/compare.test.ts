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
