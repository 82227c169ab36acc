import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { APPLIED_HASH_ANNOTATION, appliedHash, canonicalJson, withAppliedHash } from './hash.ts';
import { deepFreeze } from '../../test/helpers/desired-fixtures.ts';
import type { KubeObject } from '../desired/meta.ts';

const cm = (data: Record<string, string>, annotations?: Record<string, string>): KubeObject => ({
  apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'ns', ...(annotations ? { annotations } : {}) }, data,
});

describe('applied hash', () => {
  it('canonical JSON ignores key order and undefined, keeps array order', () => {
    assert.equal(canonicalJson({ b: 1, a: [2, 1], c: undefined }), canonicalJson({ a: [2, 1], b: 1 }));
    assert.notEqual(canonicalJson({ a: [1, 2] }), canonicalJson({ a: [2, 1] }));
  });

  it('changes with the content, not with key order or a previous hash annotation', () => {
    const a = cm({ k: 'v' });
    assert.equal(appliedHash(a), appliedHash(cm({ k: 'v' }, { [APPLIED_HASH_ANNOTATION]: 'stale' })));
    assert.notEqual(appliedHash(a), appliedHash(cm({ k: 'w' })));
    assert.notEqual(appliedHash(a), appliedHash(cm({ k: 'v' }, { other: '1' })));
  });

  it('withAppliedHash returns an annotated copy and leaves its input alone', () => {
    const a = deepFreeze(cm({ k: 'v' }, { keep: 'me' }));
    const b = withAppliedHash(a);
    assert.equal(b.metadata.annotations?.[APPLIED_HASH_ANNOTATION], appliedHash(a));
    assert.equal(b.metadata.annotations?.keep, 'me');
    assert.equal(a.metadata.annotations?.[APPLIED_HASH_ANNOTATION], undefined);
    assert.equal(appliedHash(b), appliedHash(a), 'the hash of an annotated object is the hash of what it annotates');
  });
});
