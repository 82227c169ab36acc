// `mailrelay render`: renders the examples offline, warns about Secrets it cannot see,
// and fails with field-level messages (exit 1) or usage (exit 2).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { RenderError, renderCommand, renderDocuments } from './render.ts';

const read = async (p: string) => {
  if (p.startsWith('inline:')) return p.slice('inline:'.length);
  return readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');
};
const run = async (argv: string[]) => {
  const warnings: string[] = [];
  const yaml = await renderCommand(argv, { readFile: read, warn: (l) => warnings.push(l), env: {} });
  return { yaml, warnings, docs: parseAllDocuments(yaml).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string; ownerReferences?: unknown } }) };
};
const rejects = async (argv: string[], code: 1 | 2, message: RegExp) => {
  await assert.rejects(renderCommand(argv, { readFile: read, warn: () => {}, env: {} }), (e: unknown) => {
    assert.ok(e instanceof RenderError, String(e));
    assert.equal(e.exitCode, code);
    assert.match(e.message, message);
    return true;
  });
};

describe('mailrelay render', () => {
  it('renders the minimal example with no warnings', async () => {
    const { docs, warnings } = await run(['render', '-f', 'examples/mailrelay-minimal.yaml']);
    assert.deepEqual(docs.map((d) => `${d.kind}/${d.metadata.name}`), ['ConfigMap/relay-config', 'Service/relay-headless', 'Service/relay', 'PodDisruptionBudget/relay', 'StatefulSet/relay']);
    assert.deepEqual(warnings, []);
    assert.ok(docs.every((d) => d.metadata.namespace === 'mail' && d.metadata.ownerReferences === undefined));
  });

  it('--servicemonitor adds the Prometheus Operator objects', async () => {
    const { docs } = await run(['-f', 'examples/mailrelay-minimal.yaml', '--servicemonitor']);
    assert.deepEqual(docs.slice(-1).map((d) => d.kind), ['ServiceMonitor'], 'the per-relay PrometheusRule is opt-in');
  });

  it('uses Secrets from the file and warns about the ones it cannot see', async () => {
    const { docs, warnings } = await run(['-f', 'examples/mailrelay-smarthost.yaml']);
    assert.ok(docs.some((d) => d.kind === 'StatefulSet'));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /spec\.tls\.secretRef\.name: Secret "outbound-tls" not found/);
    const cm = docs.find((d) => d.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
    assert.match(cm.data['relay.yaml'] ?? '', /usernameFile: \/etc\/mailrelay\/secrets\/smarthost\/username/);
    assert.doesNotMatch(cm.data['relay.yaml'] ?? '', /relay@example\.net/);
  });

  it('defaults the namespace and the image', async () => {
    const doc = 'apiVersion: mailrelay.io/v1alpha1\nkind: MailRelay\nmetadata:\n  name: r\nspec: {}\n';
    const { docs } = await run(['-f', `inline:${doc}`, '-n', 'team-a', '--image', 'example.com/mr:9']);
    assert.ok(docs.every((d) => d.metadata.namespace === 'team-a'));
    const sts = docs.find((d) => d.kind === 'StatefulSet') as unknown as { spec: { template: { spec: { containers: { image: string }[] } } } };
    assert.equal(sts.spec.template.spec.containers[0]?.image, 'example.com/mr:9');
  });

  it('fails naming every bad field (exit 1)', async () => {
    const doc = 'apiVersion: mailrelay.io/v1alpha1\nkind: MailRelay\nmetadata:\n  name: r\nspec:\n  relayNetworks: [10.0.0.0/8, 10.1.0.0/99]\n  spool: {size: 10GB}\n';
    await rejects(['-f', `inline:${doc}`], 1, /spec\.relayNetworks\[1\]: .*InvalidCIDR[\s\S]*spec\.spool\.size: .*InvalidQuantity/);
  });

  it('fails on a cross-field rule and a missing key in a Secret it can see (exit 1)', async () => {
    const doc = [
      'apiVersion: mailrelay.io/v1alpha1\nkind: MailRelay\nmetadata:\n  name: r\nspec:\n  auth: {usersSecretRef: {name: u}, requireTLS: false}\n  delivery: {mode: smarthost}',
      'apiVersion: v1\nkind: Secret\nmetadata:\n  name: u\nstringData:\n  htpasswd: x',
    ].join('\n---\n');
    await rejects(['-f', `inline:${doc}`], 1, /spec\.delivery\.smarthost: .*InvalidCombination/);
    const onlyKey = doc.replace('  delivery: {mode: smarthost}', '');
    await rejects(['-f', `inline:${onlyKey}`], 1, /spec\.auth\.usersSecretRef\.key: Secret "u" has no key "users" \(SecretKeyMissing\)/);
  });

  it('usage errors exit 2; no MailRelay or bad YAML exit 1', async () => {
    await rejects([], 2, /-f FILE is required/);
    await rejects(['-f', 'x', '--frobnicate'], 2, /usage:/);
    await rejects(['-f', 'inline:kind: ConfigMap\n'], 1, /no mailrelay\.io\/v1alpha1 MailRelay/);
    await rejects(['-f', 'inline:a: [\n'], 1, /not valid YAML/);
    assert.match(await renderCommand(['--help']), /usage: mailrelay render/);
  });

  it('renderDocuments renders several MailRelays, each in its own namespace', () => {
    const mk = (name: string, namespace?: string) => ({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name, ...(namespace ? { namespace } : {}) }, spec: {} });
    const { yaml } = renderDocuments([mk('a', 'x'), mk('b')], { namespace: 'dflt', defaultImage: 'i:1', serviceMonitor: false });
    const names = parseAllDocuments(yaml).map((d) => (d.toJS() as { metadata: { namespace: string; name: string } }).metadata).filter((m) => m.name === 'a' || m.name === 'b');
    assert.deepEqual(names.map((m) => `${m.namespace}/${m.name}`), ['x/a', 'x/a', 'x/a', 'dflt/b', 'dflt/b', 'dflt/b']);
  });

  it('runs as a script: prints YAML, or the problems with exit code 1', () => {
    const ok = spawnSync(process.execPath, ['--import', 'tsx', 'operator/render.ts', '-f', 'examples/mailrelay-minimal.yaml'], { encoding: 'utf8', cwd: new URL('..', import.meta.url) });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /kind: StatefulSet/);
    const bad = spawnSync(process.execPath, ['--import', 'tsx', 'operator/render.ts', '-f', '-'], {
      encoding: 'utf8', cwd: new URL('..', import.meta.url), input: 'apiVersion: mailrelay.io/v1alpha1\nkind: MailRelay\nmetadata: {name: r}\nspec: {replicas: -1}\n',
    });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /spec\.replicas/);
  });
});
