// A relay that cannot run says why where Kubernetes looks: the container's termination
// message file (terminationMessagePath). The kubelet copies it into the pod status
// (lastState.terminated.message), and the operator into its RelayCrashLooping condition.
// Here a damaged spool (its log directory replaced by a file) stops the real CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

const CLI = new URL('../../bin/mailrelay.mjs', import.meta.url).pathname;

function runRelay(dir: string, terminationMessagePath: string) {
  const config = join(dir, 'relay.yaml');
  writeFileSync(config, stringify({
    inbound: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 },
    spool: { dir: join(dir, 'spool') }, terminationMessagePath,
  }));
  return spawnSync(process.execPath, [CLI, 'relay', '--config', config], { encoding: 'utf8', timeout: 60_000 });
}

test('a damaged spool: the relay exits 1 and writes its reason to the termination message file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-term-'));
  const spool = join(dir, 'spool');
  // The spool directory exists, but where its log directory belongs there is a file.
  mkdirSync(spool);
  writeFileSync(join(spool, 'log'), 'not a directory');
  const term = join(dir, 'termination-log');
  writeFileSync(term, ''); // the kubelet creates it before the container starts
  const r = runRelay(dir, term);
  assert.equal(r.status, 1, r.stderr);
  const message = readFileSync(term, 'utf8');
  assert.equal(message, `spool open failed: io (EEXIST in mkdir ${join(spool, 'log')})`);
  assert.match(r.stderr, /EEXIST in mkdir/, 'and on stderr, for the logs');
});

test('outside a pod (no termination message file) nothing is created', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-term-'));
  mkdirSync(join(dir, 'spool'));
  writeFileSync(join(dir, 'spool', 'log'), 'not a directory');
  const term = join(dir, 'no-such-termination-log');
  const r = runRelay(dir, term);
  assert.equal(r.status, 1);
  assert.equal(existsSync(term), false);
});
