// The StatefulSet: restricted pod security, the spool PVC per pod kept on scale-down,
// the drain hook within the grace period, and the config hash that rolls the pods
// when (and only when) the config or a referenced Secret key changes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { secretInput } from '../api/inputs.ts';
import type { MailRelay, MailRelaySpec } from '../api/mailrelay.ts';
import { CONFIG_HASH_ANNOTATION } from './config-hash.ts';
import { buildStatefulSet, terminationGracePeriod } from './statefulset.ts';
import { deepFreeze, loadExample, TEST_IMAGE } from '../../test/helpers/desired-fixtures.ts';
import { withDefaults } from '../api/mailrelay.ts';

const relay = (spec: MailRelaySpec): MailRelay => deepFreeze({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'relay', namespace: 'mail', uid: 'u1' }, spec });
const NO_SECRETS = { secrets: {}, defaultImage: TEST_IMAGE };

function hashOf(sts: ReturnType<typeof buildStatefulSet>): string {
  return sts.spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION] ?? assert.fail('no config hash');
}

describe('buildStatefulSet', () => {
  const full = loadExample('examples/mailrelay-full.yaml');
  const sts = buildStatefulSet(deepFreeze(full.mr), deepFreeze(full.inputs));
  const pod = sts.spec!.template.spec!;
  const container = pod.containers[0]!;

  it('validates with kubernetes-models', () => {
    new StatefulSet(structuredClone(sts) as never).validate();
  });

  it('runs under the restricted Pod Security Standard', () => {
    assert.equal(pod.securityContext?.runAsNonRoot, true);
    assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
    assert.equal(pod.securityContext?.fsGroup, 65532);
    for (const c of pod.containers) {
      const sc = c.securityContext!;
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.equal(sc.runAsNonRoot, true);
      assert.ok(sc.runAsUser !== 0);
      assert.deepEqual(sc.capabilities, { drop: ['ALL'] });
      assert.equal(sc.seccompProfile?.type, 'RuntimeDefault');
    }
    for (const v of pod.volumes ?? []) assert.ok(!v.hostPath, `${v.name} is a hostPath`);
    assert.equal(pod.automountServiceAccountToken, false);
  });

  it('gives each pod a spool PVC, kept when scaled down or deleted', () => {
    assert.equal(sts.spec?.podManagementPolicy, 'Parallel');
    assert.deepEqual(sts.spec?.persistentVolumeClaimRetentionPolicy, { whenScaled: 'Retain', whenDeleted: 'Retain' });
    const claim = sts.spec?.volumeClaimTemplates?.[0];
    assert.equal(claim?.metadata?.name, 'spool');
    assert.deepEqual(claim?.spec?.resources?.requests, { storage: '50Gi' });
    assert.equal(claim?.spec?.storageClassName, 'fast-ssd');
    assert.deepEqual(container.volumeMounts?.find((m) => m.name === 'spool'), { name: 'spool', mountPath: '/var/spool/mailrelay' });
  });

  it('runs the relay with the mounted config, config and Secrets read-only in one projected volume', () => {
    assert.deepEqual(container.args, ['relay', '--config', '/etc/mailrelay/relay.yaml']);
    assert.deepEqual(container.volumeMounts?.find((m) => m.name === 'config'), { name: 'config', mountPath: '/etc/mailrelay', readOnly: true });
    const sources = pod.volumes?.find((v) => v.name === 'config')?.projected?.sources ?? [];
    assert.equal(sources[0]?.configMap?.name, 'full-config');
    const items = sources.flatMap((s) => (s.secret ? s.secret.items?.map((i) => `${s.secret?.name}/${i.key} -> ${i.path}`) ?? [] : []));
    assert.deepEqual(items, [
      'full-tls/tls.crt -> tls/tls.crt',
      'full-tls/tls.key -> tls/tls.key',
      'full-users/users -> secrets/auth/users',
      'full-smarthost/user -> secrets/smarthost/username',
      'full-smarthost/pass -> secrets/smarthost/password',
      'smarthost-ca/ca.crt -> secrets/smarthost-ca/ca.crt',
      'dkim-key/private.key -> secrets/dkim/private.key',
      'full-drain-token/token -> secrets/drain/token',
    ]);
    assert.ok(pod.volumes?.some((v) => v.name === 'tmp' && v.emptyDir), 'an emptyDir for /tmp');
  });

  it('mounts the drain-token Secret optional at http.drainTokenFile (a pod may start before the Secret exists)', () => {
    const sources = pod.volumes?.find((v) => v.name === 'config')?.projected?.sources ?? [];
    const drain = sources.filter((s) => s.secret?.name === 'full-drain-token');
    assert.deepEqual(drain, [{ secret: { name: 'full-drain-token', items: [{ key: 'token', path: 'secrets/drain/token' }], optional: true } }]);
    // Only the drain token is optional: a referenced Secret that is missing is a spec error, not a silent empty file.
    assert.deepEqual(sources.filter((s) => s.secret?.optional).map((s) => s.secret?.name), ['full-drain-token']);
    assert.equal(`/etc/mailrelay/${drain[0]?.secret?.items?.[0]?.path}`, '/etc/mailrelay/secrets/drain/token');
    assert.equal(container.volumeMounts?.find((m) => m.mountPath === '/etc/mailrelay')?.readOnly, true);
  });

  it('probes /healthz and /readyz and drains in preStop within the grace period', () => {
    assert.equal(container.livenessProbe?.httpGet?.path, '/healthz');
    assert.equal(container.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(container.startupProbe?.httpGet?.path, '/healthz');
    assert.deepEqual(container.lifecycle?.preStop?.exec?.command, ['/nodejs/bin/node', '/app/bin/mailrelay.mjs', 'drain', '--url', 'http://127.0.0.1:9090', '--timeout', '130']);
    assert.equal(pod.terminationGracePeriodSeconds, 180);
    assert.deepEqual(container.ports?.map((p) => [p.name, p.containerPort]), [['smtp', 2525], ['metrics', 9090]]);
  });

  it('the preStop command is one `mailrelay drain` (relay/main.ts) accepts', () => {
    const args = container.lifecycle?.preStop?.exec?.command?.slice(2) ?? [];
    assert.equal(args[0], 'drain');
    // Same options, aimed at a port where nothing listens: the command must get as far as connecting.
    const probe = args.map((a) => (a.startsWith('http://127.0.0.1:') ? 'http://127.0.0.1:1' : a === '130' ? '1' : a));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'relay/main.ts', ...probe], { encoding: 'utf8', cwd: new URL('../..', import.meta.url), timeout: 30000 });
    assert.doesNotMatch(r.stderr, /Unknown option|unexpected argument|usage:/i, r.stderr);
    assert.match(r.stderr, /POST http:\/\/127\.0\.0\.1:1\/drain failed: /, r.stderr);
  });

  it('defaults the grace period to drainTimeout plus a margin', () => {
    assert.equal(terminationGracePeriod(withDefaults({})), 90);
    assert.equal(terminationGracePeriod(withDefaults({ drainTimeout: '5m' })), 330);
    assert.equal(terminationGracePeriod(withDefaults({ drainTimeout: '5m', terminationGracePeriodSeconds: 400 })), 400);
  });

  it('passes scheduling fields through and adds user pod labels and annotations without losing its own', () => {
    assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'linux' });
    assert.equal(pod.tolerations?.length, 2);
    assert.deepEqual(pod.affinity, full.mr.spec.affinity);
    assert.equal(pod.priorityClassName, 'mail-critical');
    assert.equal(pod.topologySpreadConstraints?.[0]?.topologyKey, 'topology.kubernetes.io/zone');
    const meta = sts.spec!.template.metadata!;
    assert.equal(meta.labels?.team, 'messaging');
    assert.equal(meta.labels?.['app.kubernetes.io/instance'], 'full');
    assert.equal(meta.annotations?.['example.com/team'], 'messaging');
    assert.deepEqual(container.resources, { limits: { cpu: '2', memory: '1Gi' }, requests: { cpu: '250m', memory: '256Mi' } });
  });

  it('spreads over hostnames and zones by default, and uses default resources', () => {
    const s = buildStatefulSet(relay({}), NO_SECRETS);
    const tsc = s.spec?.template.spec?.topologySpreadConstraints ?? [];
    assert.deepEqual(tsc.map((c) => [c.topologyKey, c.whenUnsatisfiable]), [['kubernetes.io/hostname', 'ScheduleAnyway'], ['topology.kubernetes.io/zone', 'ScheduleAnyway']]);
    assert.notEqual(tsc[0]?.labelSelector, tsc[1]?.labelSelector, 'no shared objects in the output');
    assert.deepEqual(s.spec?.template.spec?.containers[0]?.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
  });

  it('takes the image from the spec, falling back to the operator image', () => {
    const img = (spec: MailRelaySpec, def = TEST_IMAGE) => buildStatefulSet(relay(spec), { ...NO_SECRETS, defaultImage: def }).spec?.template.spec?.containers[0]?.image;
    assert.equal(img({}), TEST_IMAGE);
    assert.equal(img({ image: { tag: '0.2.0' } }), 'ghcr.io/mailrelay/mailrelay:0.2.0');
    assert.equal(img({ image: { repository: 'mirror.local:5000/mailrelay' } }), 'mirror.local:5000/mailrelay:0.1.0');
    assert.equal(img({ image: { tag: '0.2.0' } }, 'r/m:0.1.0@sha256:' + 'a'.repeat(64)), 'r/m:0.2.0', 'a spec tag drops the default digest');
    assert.equal(img({}, 'localhost:5000/m'), 'localhost:5000/m');
  });

  it('uses the scale-down plan\'s replicas when given', () => {
    assert.equal(buildStatefulSet(relay({ replicas: 2 }), NO_SECRETS).spec?.replicas, 2);
    assert.equal(buildStatefulSet(relay({ replicas: 2 }), { ...NO_SECRETS, statefulSetReplicas: 4 }).spec?.replicas, 4);
  });

  describe('config hash', () => {
    const spec: MailRelaySpec = { tls: { secretRef: { name: 'tls' } }, auth: { usersSecretRef: { name: 'users' } } };
    const secrets = {
      tls: secretInput({ stringData: { 'tls.crt': 'cert-1', 'tls.key': 'key-1', 'ca.crt': 'ca-1' } }),
      users: secretInput({ stringData: { users: 'a:hash' } }),
    };
    const base = hashOf(buildStatefulSet(relay(spec), { ...NO_SECRETS, secrets }));

    it('is a sha256 and the same for the same inputs', () => {
      assert.match(base, /^[0-9a-f]{64}$/);
      assert.equal(hashOf(buildStatefulSet(relay(spec), { ...NO_SECRETS, secrets })), base);
    });
    it('changes when the config changes', () => {
      assert.notEqual(hashOf(buildStatefulSet(relay({ ...spec, relayNetworks: ['10.0.0.0/8'] }), { ...NO_SECRETS, secrets })), base);
    });
    it('changes when a referenced Secret key is rotated', () => {
      const rotated = { ...secrets, tls: secretInput({ stringData: { 'tls.crt': 'cert-2', 'tls.key': 'key-2', 'ca.crt': 'ca-1' } }) };
      assert.notEqual(hashOf(buildStatefulSet(relay(spec), { ...NO_SECRETS, secrets: rotated })), base);
      const users = { ...secrets, users: secretInput({ stringData: { users: 'a:hash\nb:hash' } }) };
      assert.notEqual(hashOf(buildStatefulSet(relay(spec), { ...NO_SECRETS, secrets: users })), base);
    });
    it('does not change when a key the relay does not use changes', () => {
      const other = { ...secrets, tls: secretInput({ stringData: { 'tls.crt': 'cert-1', 'tls.key': 'key-1', 'ca.crt': 'ca-2' } }) };
      assert.equal(hashOf(buildStatefulSet(relay(spec), { ...NO_SECRETS, secrets: other })), base);
    });
    it('does not change when the drain-token Secret appears or differs (not a config input: no roll when the operator creates it)', () => {
      const withToken = { ...secrets, 'relay-drain-token': secretInput({ stringData: { token: 'abc' } }) };
      assert.equal(hashOf(buildStatefulSet(relay(spec), { ...NO_SECRETS, secrets: withToken })), base);
      const other = { ...secrets, 'relay-drain-token': secretInput({ stringData: { token: 'xyz' } }) };
      assert.equal(hashOf(buildStatefulSet(relay(spec), { ...NO_SECRETS, secrets: other })), base);
    });
    it('changes when the smarthost CA bundle is rotated (the relay reads it at start)', () => {
      const caSpec: MailRelaySpec = { delivery: { mode: 'smarthost', smarthost: { host: 'smtp.example.net', caSecretRef: { name: 'ca' } } } };
      const withCa = (pem: string) => ({ ...NO_SECRETS, secrets: { ca: secretInput({ stringData: { 'ca.crt': pem, other: 'x' } }) } });
      const one = hashOf(buildStatefulSet(relay(caSpec), withCa('CA-1')));
      assert.notEqual(hashOf(buildStatefulSet(relay(caSpec), withCa('CA-2'))), one);
      const sources = buildStatefulSet(relay(caSpec), withCa('CA-1')).spec?.template.spec?.volumes?.find((v) => v.name === 'config')?.projected?.sources ?? [];
      assert.deepEqual(sources.filter((s) => s.secret?.name === 'ca').map((s) => s.secret?.items), [[{ key: 'ca.crt', path: 'secrets/smarthost-ca/ca.crt' }]]);
    });
    it('does not change with replicas (scaling must not roll the pods)', () => {
      assert.equal(hashOf(buildStatefulSet(relay({ ...spec, replicas: 5 }), { ...NO_SECRETS, secrets })), base);
    });
  });
});
