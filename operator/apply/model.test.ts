import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dumpYaml } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { buildDesired } from '../desired/index.ts';
import { loadExample } from '../../test/helpers/desired-fixtures.ts';
import { LossySerializationError, toClientModel } from './model.ts';

describe('toClientModel', () => {
  it('round-trips every child of the full example, NetworkPolicy `from` included', () => {
    const { mr, inputs } = loadExample('examples/mailrelay-full.yaml', { capabilities: true });
    for (const obj of buildDesired(mr, inputs)) {
      const wire = parse(dumpYaml(toClientModel(obj)));
      assert.deepEqual(wire, JSON.parse(JSON.stringify(obj)), obj.kind);
    }
  });

  it('refuses a field client-node would silently drop', () => {
    const obj = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { a: 'b' }, notAField: true };
    assert.throws(() => toClientModel(obj), (e: unknown) => e instanceof LossySerializationError && e.field === 'notAField');
  });
});
