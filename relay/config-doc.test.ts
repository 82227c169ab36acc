import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configDoc } from '../scripts/gen-config-doc.ts';

test('docs/config.md is generated from the schema and up to date', () => {
  const committed = readFileSync(new URL('../docs/config.md', import.meta.url), 'utf8');
  assert.equal(committed, configDoc(), 'run: npx tsx scripts/gen-config-doc.ts > docs/config.md');
  assert.ok(!/\|\s*\|\s*$/m.test(committed.split('\n').filter((l) => l.startsWith('| `')).join('\n')), 'every field has a description');
});
