// values.yaml is the chart's user interface: every value has a comment saying what it
// does, every value is covered by values.schema.json (which rejects unknown keys), and the
// defaults themselves pass the schema.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Ajv from 'ajv';
import { isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Node, Pair, YAMLMap } from 'yaml';
import { CHART } from './chart.ts';

/** Values whose content is a Kubernetes object or spec passed through verbatim: documented as a whole. */
// Free-form maps: their keys are the user's, not the chart's.
const VERBATIM = new Set(['podSecurityContext', 'securityContext', 'resources', 'exampleRelay.spec', 'monitoring.relays.serviceMonitor.labels']);

interface Entry {
  path: string;
  documented: boolean;
  isSection: boolean;
}

/** Every key of values.yaml with whether a comment sits above it (for a map's first key the comment belongs to the map). */
function entries(map: YAMLMap, prefix: string, out: Entry[]): Entry[] {
  map.items.forEach((pair: Pair, i) => {
    const key = pair.key as Node;
    const value = pair.value as Node | null;
    const path = prefix ? `${prefix}.${isScalar(key) ? String(key.value) : '?'}` : String(isScalar(key) ? key.value : '?');
    const comment = key.commentBefore ?? (i === 0 ? map.commentBefore : undefined);
    const isSection = isMap(value) && value.items.length > 0 && !VERBATIM.has(path);
    out.push({ path, documented: Boolean(comment?.trim()), isSection });
    if (isSection) entries(value, path, out);
  });
  return out;
}

describe('values.yaml and values.schema.json', async () => {
  const text = await readFile(join(CHART, 'values.yaml'), 'utf8');
  const doc = parseDocument(text);
  const schema = JSON.parse(await readFile(join(CHART, 'values.schema.json'), 'utf8')) as Record<string, unknown>;
  assert.ok(isMap(doc.contents));
  const all = entries(doc.contents, '', []);

  it('documents every value with a comment above it', () => {
    const undocumented = all.filter((e) => !e.isSection && !e.documented).map((e) => e.path);
    assert.deepEqual(undocumented, []);
    assert.ok(all.length > 60, `found ${all.length} keys; the walk reached the nested values`);
  });

  it('describes every value in the schema, and nothing the values do not have', () => {
    const at = (path: string) => path.split('.').reduce<Record<string, unknown> | undefined>(
      (s, k) => (s?.properties as Record<string, Record<string, unknown>> | undefined)?.[k], schema);
    for (const e of all) assert.ok(at(e.path), `values.schema.json has no property for ${e.path}`);
    // And the reverse: a schema property without a default in values.yaml is a value nobody documented.
    const known = new Set(all.map((e) => e.path));
    const walk = (s: Record<string, unknown>, prefix: string) => {
      for (const [k, sub] of Object.entries((s.properties as Record<string, Record<string, unknown>> | undefined) ?? {})) {
        const path = prefix ? `${prefix}.${k}` : k;
        if (path === 'global') continue; // Helm's own
        assert.ok(known.has(path), `the schema allows ${path}, which values.yaml neither sets nor documents`);
        if (!VERBATIM.has(path)) walk(sub, path);
      }
    };
    walk(schema, '');
  });

  it('closes every section of the schema, so a misspelt key fails the install', () => {
    for (const e of all.filter((x) => x.isSection)) {
      const s = e.path.split('.').reduce<Record<string, unknown>>((acc, k) => (acc.properties as Record<string, Record<string, unknown>>)[k] ?? {}, schema);
      assert.equal(s.additionalProperties, false, `${e.path} must set additionalProperties: false`);
    }
    assert.equal(schema.additionalProperties, false);
    assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  });

  it('accepts its own defaults (checked with ajv as well as by the renderer)', () => {
    const ajv = new Ajv.default({ strict: false, allErrors: true });
    const valid = ajv.validate(schema, doc.toJS());
    assert.ok(valid, JSON.stringify(ajv.errors, null, 2));
  });

  it('has no lists or maps left undocumented inside sections', () => {
    for (const e of all) {
      const node = doc.getIn(e.path.split('.'), true) as Node | undefined;
      if (isSeq(node) || (isMap(node) && node.items.length === 0)) assert.ok(e.documented, `${e.path} is a list or map value and needs a comment`);
    }
  });
});
