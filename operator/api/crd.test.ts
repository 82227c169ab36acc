// The generated CRD: the checked-in file is current, it is a valid
// CustomResourceDefinition, and its schema is structural (what the API server
// requires for pruning and defaulting) with a description on every field.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { Ajv } from 'ajv';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { CRD_FILE, buildCrd, renderCrdYaml } from './crd.ts';
import type { JsonSchema } from './json-schema.ts';
import { closedSchema } from '../../test/helpers/closed-schema.ts';

const crdUrl = new URL(`../../${CRD_FILE}`, import.meta.url);

/** Every schema node with its path. */
function* walk(node: JsonSchema, path: string): Generator<[string, JsonSchema]> {
  yield [path, node];
  for (const [k, v] of Object.entries(node.properties ?? {})) yield* walk(v, `${path}.${k}`);
  if (node.items) yield* walk(node.items, `${path}[]`);
  if (typeof node.additionalProperties === 'object') yield* walk(node.additionalProperties, `${path}{}`);
}

describe('CRD', () => {
  const crd = buildCrd();
  const version = crd.spec.versions[0]!;
  const schema = version.schema?.openAPIV3Schema as JsonSchema;

  it(`${CRD_FILE} is what operator/api/crd.ts generates`, () => {
    const onDisk = readFileSync(crdUrl, 'utf8');
    assert.ok(onDisk === renderCrdYaml(), `${CRD_FILE} is stale; regenerate it: npx tsx operator/api/crd.ts > ${CRD_FILE}`);
    assert.deepEqual(parse(onDisk), JSON.parse(JSON.stringify(crd)));
  });

  it('is a valid apiextensions.k8s.io/v1 CustomResourceDefinition', () => {
    new CustomResourceDefinition(structuredClone(crd) as never).validate();
  });

  it('names, scope, version, subresources and printer columns', () => {
    assert.equal(crd.metadata?.name, 'mailrelays.mailrelay.io');
    assert.deepEqual(crd.spec.names.shortNames, ['mr']);
    assert.equal(crd.spec.names.kind, 'MailRelay');
    assert.equal(crd.spec.scope, 'Namespaced');
    assert.equal(crd.spec.versions.length, 1);
    assert.equal(version.name, 'v1alpha1');
    assert.ok(version.served && version.storage);
    assert.deepEqual(version.subresources, {
      status: {},
      scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
    });
    const cols = Object.fromEntries((version.additionalPrinterColumns ?? []).map((c) => [c.name, c.jsonPath]));
    assert.equal(cols.Ready, '.status.conditions[?(@.type=="Ready")].status');
    assert.equal(cols.Replicas, '.status.desiredReplicas', 'spec.replicas is unset while the operator autoscales');
    assert.equal(cols.Queue, '.status.queue.messages');
    assert.equal(cols.Oldest, '.status.queue.oldestMessageTime', 'a date column: kubectl shows its age, current without a status write');
    assert.equal(cols['Ready-Replicas'], '.status.readyReplicas');
    assert.equal(cols.Smarthost, '.spec.delivery.smarthost.host');
    assert.equal(cols.Age, '.metadata.creationTimestamp');
  });

  it('is structural: a type on every node (or int-or-string), no properties next to additionalProperties, anyOf only for int-or-string', () => {
    for (const [path, node] of walk(schema, '')) {
      const intOrString = node['x-kubernetes-int-or-string'] === true;
      if (!intOrString) assert.ok(typeof node.type === 'string', `${path}: no type`);
      if (node.anyOf) {
        assert.ok(intOrString, `${path}: anyOf outside int-or-string`);
        assert.deepEqual(node.anyOf, [{ type: 'integer' }, { type: 'string' }], path);
      }
      assert.ok(!(node.properties && node.additionalProperties !== undefined), `${path}: properties and additionalProperties`);
      for (const banned of ['$schema', 'propertyNames', 'oneOf', 'allOf', 'not', 'nullable', '$ref', 'const']) assert.ok(!(banned in node), `${path}: ${banned}`);
      if (node['x-kubernetes-preserve-unknown-fields'] === true) assert.equal(node.type, 'object', path);
    }
  });

  it('describes every field and list item', () => {
    for (const [path, node] of walk(schema, '')) {
      if (path.endsWith('{}')) continue; // values of string maps: the map is described
      if (path.startsWith('.metadata')) continue; // the API server refuses descriptions there
      assert.ok(typeof node.description === 'string' && node.description.length > 0, `${path || '(root)'}: no description`);
    }
  });

  it('bounds every spec array, so CEL cost estimates stay within the API server budget', () => {
    for (const [path, node] of walk(schema.properties!.spec!, 'spec')) {
      if (node.type === 'array') assert.ok(typeof node.maxItems === 'number', `${path}: no maxItems`);
    }
  });

  it('every default validates against its own node', () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    for (const [path, node] of walk(schema, '')) {
      if (node.default === undefined) continue;
      const validate = ajv.compile(closedSchema(node));
      assert.ok(validate(node.default), `${path}: default ${JSON.stringify(node.default)}: ${ajv.errorsText(validate.errors)}`);
    }
  });

  it('status conditions are a map list keyed by type (server-side apply merges them by type)', () => {
    const conditions = schema.properties!.status!.properties!.conditions!;
    assert.equal(conditions['x-kubernetes-list-type'], 'map');
    assert.deepEqual(conditions['x-kubernetes-list-map-keys'], ['type']);
    assert.deepEqual(conditions.items?.required, ['type', 'status', 'lastTransitionTime', 'reason', 'message']);
  });
});
