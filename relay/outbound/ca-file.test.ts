import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { readCaBundle, withDefaultCas } from './ca-file.ts';

const PEM = tls.rootCertificates[0]!;

test('a CA bundle is read once and checked; a missing or empty file names the config field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-ca-'));
  writeFileSync(join(dir, 'ok.pem'), `# comment\n${PEM}\n${PEM}\n`);
  writeFileSync(join(dir, 'empty.pem'), 'not a certificate\n');
  assert.equal(readCaBundle(join(dir, 'ok.pem'), 'x').match(/BEGIN CERTIFICATE/g)?.length, 2);
  assert.throws(() => readCaBundle(join(dir, 'missing.pem'), 'delivery.smarthost.caFile'), /^Error: delivery\.smarthost\.caFile: cannot read .*missing\.pem: ENOENT/);
  assert.throws(() => readCaBundle(join(dir, 'empty.pem'), 'delivery.extraCaFile'), /delivery\.extraCaFile: .*empty\.pem holds no PEM certificate/);
});

test('extra CAs come on top of the default store, not instead of it', () => {
  const all = withDefaultCas('EXTRA');
  assert.equal(all.length, tls.rootCertificates.length + 1);
  assert.equal(all.at(-1), 'EXTRA');
});
