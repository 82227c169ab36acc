// Every example in examples/ is a valid MailRelay three ways: against the CRD schema
// (ajv, unknown fields rejected), by validateMailRelay, and by building its children,
// each of which must validate as a Kubernetes object. The full example must use every
// spec field, so a field added to the API without an example fails here.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { Ajv } from 'ajv';
import { buildOpenApiSchema } from './crd.ts';
import { validateMailRelay } from './mailrelay.ts';
import type { JsonSchema } from './json-schema.ts';
import { closedSchema } from '../../test/helpers/closed-schema.ts';
import { buildDesired } from '../desired/index.ts';
import { loadExample, readDocs, validateKubeObject } from '../../test/helpers/desired-fixtures.ts';

const EXAMPLES = readdirSync(new URL('../../examples/', import.meta.url)).filter((f) => /^mailrelay-.*\.yaml$/.test(f)).sort();

/** Paths of every field under a schema node (list items as [], preserve-unknown and map values are leaves). */
function fieldPaths(node: JsonSchema, path: string, out: string[] = []): string[] {
  for (const [k, v] of Object.entries(node.properties ?? {})) {
    const p = `${path}.${k}`;
    out.push(p);
    if (v['x-kubernetes-preserve-unknown-fields'] === true) continue;
    fieldPaths(v, p, out);
    if (v.items) fieldPaths(v.items, `${p}[]`, out);
  }
  return out;
}

/** Paths present in a value, in the same notation. */
function valuePaths(value: unknown, path: string, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => valuePaths(v, `${path}[]`, out));
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      out.add(`${path}.${k}`);
      valuePaths(v, `${path}.${k}`, out);
    }
  }
  return out;
}

describe('examples', () => {
  const schema = buildOpenApiSchema();
  const validate = new Ajv({ strict: false, allErrors: true }).compile(closedSchema(schema));

  it('there are at least the minimal, smarthost and full examples', () => {
    for (const f of ['mailrelay-minimal.yaml', 'mailrelay-smarthost.yaml', 'mailrelay-full.yaml']) assert.ok(EXAMPLES.includes(f), f);
  });

  for (const file of EXAMPLES) {
    describe(file, () => {
      it('validates against the CRD schema', () => {
        const relays = readDocs(`examples/${file}`).filter((d) => d.kind === 'MailRelay');
        assert.equal(relays.length, 1);
        assert.ok(validate(relays[0]), JSON.stringify(validate.errors, null, 2));
      });

      it('passes validateMailRelay with the Secrets it references', () => {
        const { mr, inputs } = loadExample(`examples/${file}`);
        assert.deepEqual(validateMailRelay(mr, inputs), []);
      });

      it('builds children that each validate as Kubernetes objects', () => {
        const { mr, inputs } = loadExample(`examples/${file}`, { capabilities: true });
        const objects = buildDesired(mr, inputs);
        assert.ok(objects.length >= 5);
        for (const o of objects) assert.doesNotThrow(() => validateKubeObject(o), `${o.kind}/${o.metadata.name}`);
      });
    });
  }

  it('mailrelay-full.yaml sets every spec field', () => {
    const { mr } = loadExample('examples/mailrelay-full.yaml');
    const present = valuePaths(mr.spec, 'spec');
    const missing = fieldPaths(schema.properties!.spec!, 'spec').filter((p) => !present.has(p));
    assert.deepEqual(missing, []);
  });

  it('the schema check does catch mistakes (a typo and a bad quantity)', () => {
    assert.equal(validate({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'x' }, spec: { replica: 2 } }), false);
    assert.equal(validate({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'x' }, spec: { spool: { size: '10GB' } } }), false);
  });
});
