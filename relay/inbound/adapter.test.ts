// adapter.ts reaches into smtp-server's private members, which may change in any release:
// the dependency must be pinned to exactly the version the adapter was read against, and
// that version must be the one installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { SMTP_SERVER_VERSION } from './adapter.ts';

test('package.json pins smtp-server to exactly the version adapter.ts was written against, and that version is installed', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
  assert.equal(pkg.dependencies['smtp-server'], SMTP_SERVER_VERSION, 'no range: an upgrade means re-reading smtp-server for every private member adapter.ts uses');
  const require = createRequire(import.meta.url);
  const installed = JSON.parse(readFileSync(require.resolve('smtp-server/package.json'), 'utf8')) as { version: string };
  assert.equal(installed.version, SMTP_SERVER_VERSION);
});
