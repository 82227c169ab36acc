// docs/crd.md's field reference is current with the schema and the rules.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CRD_DOC, renderFieldReference, updateDoc } from './crd-docs.ts';

describe('docs/crd.md', () => {
  it('has the current field reference (regenerate: npx tsx operator/api/crd-docs.ts)', () => {
    const text = readFileSync(new URL(`../../${CRD_DOC}`, import.meta.url), 'utf8');
    assert.ok(text === updateDoc(text), `${CRD_DOC} is stale; run: npx tsx operator/api/crd-docs.ts`);
  });

  it('lists every top-level spec field and every rule', () => {
    const ref = renderFieldReference();
    for (const f of ['replicas', 'relayNetworks', 'delivery.smarthost.credentialsSecretRef.usernameKey', 'spool.size', 'scaleDown.policy']) assert.match(ref, new RegExp(`\`spec\\.${f.replace(/\./g, '\\.')}\``));
    assert.match(ref, /`max-age-covers-schedule`/);
  });
});
