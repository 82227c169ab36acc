// Builder output for the minimal and full examples, compared with golden files.
// A change to any builder shows up here as a reviewable diff of the YAML.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { buildDesired } from './index.ts';
import { deepFreeze, loadExample } from '../../test/helpers/desired-fixtures.ts';
import { assertGolden, lineDiff } from '../../test/helpers/golden.ts';

const CASES = [
  { name: 'minimal', example: 'examples/mailrelay-minimal.yaml', capabilities: false },
  { name: 'full', example: 'examples/mailrelay-full.yaml', capabilities: true },
];

describe('golden files', () => {
  for (const c of CASES) {
    it(`${c.name}: buildDesired matches testdata/${c.name}.golden.yaml`, () => {
      const { mr, inputs } = loadExample(c.example, { capabilities: c.capabilities });
      const yaml = buildDesired(deepFreeze(mr), deepFreeze(inputs)).map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
      assertGolden(new URL(`./testdata/${c.name}.golden.yaml`, import.meta.url), yaml);
    });
  }

  it('the diff names the changed lines', () => {
    const d = lineDiff('a\nb\nc\n', 'a\nB\nc\n');
    assert.match(d, /^- b$/m);
    assert.match(d, /^\+ B$/m);
  });
});
