// Unit tests of the pure parts: apply merge and ownership, the patch formats,
// selectors, schema pruning/defaulting and the CEL subset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplyConflictError, apply, fieldsOf, humanPath, managedFieldsFromOwners, mergeApplied, ownersFromManagedFields, recordUpdate } from './apply.ts';
import type { FieldOwner } from './apply.ts';
import { evalRule } from './cel.ts';
import { builtinListType, schemaListType } from './listtypes.ts';
import { PatchError, jsonPatch, mergePatch, strategicMergePatch } from './patch.ts';
import { labelSelectorToString, matchFields, matchLabels, parseFieldSelector, parseLabelSelector } from './selectors.ts';
import { applyDefaults, fieldPath, prune, validateCustomResource } from './validation.ts';
import type { Obj } from './types.ts';

const sts = (containers: Obj[], extra: Obj = {}): Obj => ({
  apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'web', namespace: 'ns' },
  spec: { replicas: 1, template: { spec: { containers } }, ...extra },
});

function run(live: Obj | undefined, applied: Obj, owners: FieldOwner[], manager: string, force = false) {
  return apply({ live, applied, owners, manager, subresource: '', apiVersion: 'apps/v1', force, resolve: builtinListType });
}

test('mergeApplied merges containers by name and ports by containerPort/protocol, replaces atomic lists', () => {
  const live = sts([{ name: 'a', image: 'a:1', ports: [{ containerPort: 25, protocol: 'TCP' }] }, { name: 'b', image: 'b:1' }],
    { tolerations: [{ key: 'x' }] });
  const applied = sts([{ name: 'a', image: 'a:2', ports: [{ containerPort: 25, name: 'smtp' }] }], { tolerations: [{ key: 'y' }] });
  const out = mergeApplied(live, applied, builtinListType) as { spec: { template: { spec: { containers: Obj[] } }; tolerations: Obj[] } };
  assert.deepEqual(out.spec.template.spec.containers, [
    { name: 'a', image: 'a:2', ports: [{ containerPort: 25, protocol: 'TCP', name: 'smtp' }] },
    { name: 'b', image: 'b:1' },
  ]);
  assert.deepEqual(out.spec.tolerations, [{ key: 'y' }], 'tolerations are atomic');
});

test('fieldsOf encodes keyed items, sets and leaves as FieldsV1 paths and skips system metadata', () => {
  const f = fieldsOf({ apiVersion: 'v1', kind: 'X', metadata: { name: 'n', uid: 'u', labels: { a: 'b' }, finalizers: ['f1'] }, spec: { containers: [{ name: 'c', image: 'i' }] } }, builtinListType);
  const paths = [...f.keys()].map(humanPath).sort();
  assert.deepEqual(paths, ['.metadata.finalizers["f1"]', '.metadata.labels.a', '.spec.containers[name="c"]', '.spec.containers[name="c"].image', '.spec.containers[name="c"].name']);
  const tree = managedFieldsFromOwners([{ manager: 'm', operation: 'Apply', subresource: '', apiVersion: 'v1', time: 't', fields: new Set(f.keys()) }]);
  assert.deepEqual(tree[0]?.fieldsV1, {
    'f:metadata': { 'f:labels': { 'f:a': {} }, 'f:finalizers': { 'v:"f1"': {} } },
    'f:spec': { 'f:containers': { 'k:{"name":"c"}': { '.': {}, 'f:name': {}, 'f:image': {} } } },
  });
  assert.deepEqual(ownersFromManagedFields(tree)[0]?.fields, new Set(f.keys()), 'FieldsV1 round-trips');
});

test('apply: same manager dropping a field removes it; another manager changing an owned field conflicts unless forced', () => {
  const first = run(undefined, sts([{ name: 'a', image: 'a:1' }], { minReadySeconds: 5 }), [], 'op');
  assert.equal((first.object.spec as Obj).minReadySeconds, 5);
  const second = run(first.object, sts([{ name: 'a', image: 'a:1' }]), first.owners, 'op');
  assert.equal((second.object.spec as Obj).minReadySeconds, undefined, 'field no longer applied is removed');

  assert.throws(() => run(second.object, sts([{ name: 'a', image: 'a:2' }]), second.owners, 'other'), (e: unknown) => {
    assert.ok(e instanceof ApplyConflictError);
    assert.match(e.message, /^Apply failed with 1 conflict: conflict with "op" using apps\/v1: \.spec\.template\.spec\.containers\[name="a"\]\.image$/);
    return true;
  });
  const same = run(second.object, sts([{ name: 'a', image: 'a:1' }]), second.owners, 'other');
  assert.equal(same.owners.length, 2, 'applying the same value shares ownership');
  const forced = run(second.object, sts([{ name: 'a', image: 'a:2' }]), second.owners, 'other', true);
  const img = JSON.stringify(['f:spec', 'f:template', 'f:spec', 'f:containers', 'k:{"name":"a"}', 'f:image']);
  assert.equal(forced.owners.find((o) => o.manager === 'op')?.fields.has(img), false, 'force takes ownership away');
  assert.equal(forced.owners.find((o) => o.manager === 'other')?.fields.has(img), true);
});

test('apply keeps a field another manager still owns when the first stops applying it', () => {
  const a = run(undefined, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { k: 'v', j: 'w' } }, [], 'a');
  const b = run(a.object, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { k: 'v' } }, a.owners, 'b');
  const a2 = run(b.object, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: {} }, b.owners, 'a');
  assert.deepEqual(a2.object.data, { k: 'v' }, 'k is still owned by b; j had only a');
});

test('recordUpdate gives changed fields to the updater and takes them from others', () => {
  const a = run(undefined, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { k: 'v' } }, [], 'a');
  const next = { ...a.object, data: { k: 'edited', n: 'new' } };
  const owners = recordUpdate(a.owners, 'kubectl-edit', '', 'v1', a.object, next, builtinListType);
  assert.deepEqual(owners.map((o) => [o.manager, o.operation, [...o.fields].map(humanPath).sort()]), [['kubectl-edit', 'Update', ['.data.k', '.data.n']]]);
});

test('merge patch, JSON patch and strategic merge patch', () => {
  assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { b: { c: null, e: 4 }, f: [1] }), { a: 1, b: { d: 3, e: 4 }, f: [1] });
  assert.deepEqual(jsonPatch({ a: [1, 2], b: 'x' }, [{ op: 'add', path: '/a/-', value: 3 }, { op: 'replace', path: '/b', value: 'y' }, { op: 'remove', path: '/a/0' }]), { a: [2, 3], b: 'y' });
  assert.throws(() => jsonPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }]), PatchError);
  assert.throws(() => jsonPatch({ a: 1 }, [{ op: 'remove', path: '/zz' }]), /missing path/);
  const live = { spec: { containers: [{ name: 'a', image: '1' }, { name: 'b', image: '1' }] } };
  assert.deepEqual(strategicMergePatch(live, { spec: { containers: [{ name: 'b', image: '2' }, { name: 'c', image: '3' }] } }, builtinListType),
    { spec: { containers: [{ name: 'a', image: '1' }, { name: 'b', image: '2' }, { name: 'c', image: '3' }] } });
  assert.deepEqual(strategicMergePatch(live, { spec: { containers: [{ name: 'a', $patch: 'delete' }] } }, builtinListType),
    { spec: { containers: [{ name: 'b', image: '1' }] } });
});

test('label and field selectors', () => {
  const reqs = parseLabelSelector('app=web,tier in (a, b),!legacy,env!=prod,owner');
  assert.equal(matchLabels(reqs, { app: 'web', tier: 'b', owner: 'x' }), true);
  assert.equal(matchLabels(reqs, { app: 'web', tier: 'c', owner: 'x' }), false);
  assert.equal(matchLabels(reqs, { app: 'web', tier: 'a', owner: 'x', legacy: '1' }), false);
  assert.equal(matchLabels(reqs, { app: 'web', tier: 'a', owner: 'x', env: 'prod' }), false);
  assert.throws(() => parseLabelSelector('a=b c'), /unable to parse/);
  const f = parseFieldSelector('metadata.name=x,metadata.namespace!=kube-system');
  assert.equal(matchFields(f, { metadata: { name: 'x', namespace: 'default' } }), true);
  assert.equal(matchFields(f, { metadata: { name: 'x', namespace: 'kube-system' } }), false);
  assert.throws(() => parseFieldSelector('spec.foo=1'), /field label not supported: spec.foo/);
  assert.equal(labelSelectorToString({ matchLabels: { b: '2', a: '1' }, matchExpressions: [{ key: 'c', operator: 'In', values: ['y', 'x'] }] }), 'a=1,b=2,c in (x,y)');
});

test('CRD schema: prune unknown fields, keep preserve-unknown-fields subtrees, apply nested defaults, list-map keys', () => {
  const schema: Obj = {
    type: 'object',
    properties: {
      spec: {
        type: 'object',
        properties: {
          replicas: { type: 'integer', default: 1 },
          tls: { type: 'object', default: {}, properties: { enabled: { type: 'boolean', default: true } } },
          extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          routes: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['domain'], items: { type: 'object', properties: { domain: { type: 'string' } } } },
        },
      },
    },
  };
  const obj: Obj = { apiVersion: 'x/v1', kind: 'X', metadata: { name: 'a' }, spec: { bogus: 1, extra: { anything: { goes: true } } }, top: 1 };
  assert.deepEqual(prune(obj, schema).sort(), ['spec.bogus', 'top']);
  applyDefaults(obj, schema);
  assert.deepEqual(obj.spec, { extra: { anything: { goes: true } }, replicas: 1, tls: { enabled: true } });
  assert.deepEqual(schemaListType(schema)(['spec', 'routes']), { type: 'map', keys: ['domain'], defaults: {} });
  assert.equal(fieldPath('/spec/routes/0/domain'), 'spec.routes[0].domain');
});

test('CEL subset: common rule forms evaluate, unsupported ones are reported as such', () => {
  assert.equal(evalRule('self.min <= self.max', { min: 1, max: 2 }), true);
  assert.equal(evalRule('self.min <= self.max', { min: 3, max: 2 }), false);
  assert.equal(evalRule('!has(self.a) || self.a.size() > 0', {}), true);
  assert.equal(evalRule("self.all(d, d.endsWith('.example'))", ['a.example', 'b.example']), true);
  assert.equal(evalRule("self.exists(d, d == 'x')", ['y']), false);
  assert.equal(evalRule('self.mode in ["a", "b"] ? self.port > 0 : true', { mode: 'a', port: 0 }), false);
  assert.equal(evalRule('self == oldSelf', 'a', 'a'), true);
  assert.equal(evalRule('self.a > 1', {}), 'no such key: a');
  assert.equal(evalRule('self.quantity(x)', {}), 'unsupported');
  const schema: Obj = {
    type: 'object',
    properties: { spec: { type: 'object', 'x-kubernetes-validations': [{ rule: 'self.min <= self.max', message: 'min must not exceed max' }], properties: { min: { type: 'integer' }, max: { type: 'integer' } } } },
  };
  const res = validateCustomResource({ apiVersion: 'x/v1', kind: 'X', metadata: { name: 'a' }, spec: { min: 5, max: 1 } }, schema);
  assert.deepEqual(res.causes, [{ reason: 'FieldValueInvalid', message: 'Invalid value: "object": min must not exceed max', field: 'spec' }]);
});
