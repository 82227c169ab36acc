// withDefaults and validateMailRelay: defaults come back on a copy, and every kind of
// problem names the field at fault with a reason a controller can act on.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidMailRelayError, fieldPath, requestedReplicas, validateMailRelay, withDefaults, type MailRelay, type MailRelaySpec, type ValidationProblem } from './mailrelay.ts';
import { secretInput, type SecretInput } from './inputs.ts';
import { deepFreeze } from '../../test/helpers/desired-fixtures.ts';

const mr = (spec: unknown, name = 'relay'): MailRelay =>
  deepFreeze({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name, namespace: 'mail' }, spec: spec as MailRelaySpec });

const SECRETS: Record<string, SecretInput> = {
  tls: secretInput({ type: 'kubernetes.io/tls', stringData: { 'tls.crt': 'c', 'tls.key': 'k' } }),
  users: secretInput({ stringData: { users: 'app:$2b$10$x' } }),
  creds: secretInput({ stringData: { username: 'u', password: 'p' } }, ['username']),
};

const problems = (spec: unknown, secrets: Record<string, SecretInput> = SECRETS, name?: string) => validateMailRelay(mr(spec, name), { secrets });
const only = (list: ValidationProblem[]) => {
  assert.equal(list.length, 1, JSON.stringify(list, null, 2));
  return list[0]!;
};

describe('withDefaults', () => {
  it('fills every default on a copy and leaves the (frozen) input alone', () => {
    const spec = deepFreeze({ relayNetworks: ['10.0.0.0/8'], delivery: { retry: { schedule: ['1m'] } } });
    const d = withDefaults(spec);
    assert.equal(d.replicas, undefined, 'no default in the schema: CEL must see whether the user set it');
    assert.equal(requestedReplicas(d), 2);
    assert.equal(requestedReplicas(withDefaults({ autoscaling: { minReplicas: 3, maxReplicas: 5 } })), 3);
    assert.equal(d.delivery.mode, 'mx');
    assert.deepEqual(d.delivery.retry, { schedule: ['1m'], maxAge: '120h' });
    assert.equal(d.spool.size, '10Gi');
    assert.equal(d.maxMessageSize, '25Mi');
    assert.equal(d.service.port, 25);
    assert.equal(d.podDisruptionBudget.maxUnavailable, 1);
    assert.equal(d.monitoring.serviceMonitor.enabled, true);
    assert.equal(d.drainTimeout, '60s');
    assert.notEqual(d.relayNetworks, spec.relayNetworks);
    assert.deepEqual(spec, { relayNetworks: ['10.0.0.0/8'], delivery: { retry: { schedule: ['1m'] } } });
  });

  it('fills the smarthost defaults only when a smarthost is given', () => {
    assert.equal(withDefaults({}).delivery.smarthost, undefined);
    const sh = withDefaults({ delivery: { mode: 'smarthost', smarthost: { host: 'smtp.example.net' } } }).delivery.smarthost;
    assert.deepEqual(sh, { host: 'smtp.example.net', port: 587, tls: 'required', insecureSkipVerify: false });
  });

  it('does not share objects with its input (pass-through affinity included)', () => {
    const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } } };
    const d = withDefaults({ affinity });
    assert.deepEqual(d.affinity, affinity);
    assert.notEqual(d.affinity?.nodeAffinity, affinity.nodeAffinity);
  });

  it('throws InvalidMailRelayError naming the field for a spec that does not parse', () => {
    assert.throws(() => withDefaults({ replicas: -1 }), (e: unknown) => e instanceof InvalidMailRelayError && e.problems[0]?.field === 'spec.replicas');
  });
});

describe('validateMailRelay', () => {
  it('accepts a minimal spec', () => assert.deepEqual(problems({ relayNetworks: ['10.0.0.0/8'] }), []));
  it('accepts an empty spec (every field defaulted)', () => assert.deepEqual(problems({}), []));

  const cases: { name: string; spec: unknown; field: string; reason: ValidationProblem['reason']; secrets?: Record<string, SecretInput>; match?: RegExp; relayName?: string }[] = [
    { name: 'a bad CIDR', spec: { relayNetworks: ['10.0.0.0/8', '10.0.0.0/33'] }, field: 'spec.relayNetworks[1]', reason: 'InvalidCIDR', match: /CIDR/ },
    { name: 'a bad CIDR in a NetworkPolicy peer', spec: { networkPolicy: { enabled: true, allowedClients: [{ ipBlock: { cidr: 'nope' } }] } }, field: 'spec.networkPolicy.allowedClients[0].ipBlock.cidr', reason: 'InvalidCIDR' },
    { name: 'an unparsable quantity', spec: { maxMessageSize: '25MB' }, field: 'spec.maxMessageSize', reason: 'InvalidQuantity', match: /quantity/ },
    { name: 'a zero quantity', spec: { spool: { size: '0Gi' } }, field: 'spec.spool.size', reason: 'InvalidQuantity' },
    { name: 'an unparsable duration', spec: { delivery: { retry: { schedule: ['1m', '5 minutes'] } } }, field: 'spec.delivery.retry.schedule[1]', reason: 'InvalidDuration' },
    { name: 'a day unit (Go durations have none)', spec: { drainTimeout: '1d' }, field: 'spec.drainTimeout', reason: 'InvalidDuration' },
    { name: 'a zero duration', spec: { drainTimeout: '0s' }, field: 'spec.drainTimeout', reason: 'InvalidDuration' },
    { name: 'a wrong type', spec: { replicas: 'two' }, field: 'spec.replicas', reason: 'InvalidValue' },
    { name: 'a value not in the enum', spec: { delivery: { mode: 'lmtp' } }, field: 'spec.delivery.mode', reason: 'InvalidValue' },
    { name: 'a missing required field', spec: { tls: { secretRef: {} } }, field: 'spec.tls.secretRef.name', reason: 'InvalidValue', match: /required/ },
    { name: 'an unknown field (a typo)', spec: { relayNetwork: ['10.0.0.0/8'] }, field: 'spec.relayNetwork', reason: 'UnknownField' },
    { name: 'a name too long for the children', spec: {}, relayName: 'a'.repeat(53), field: 'metadata.name', reason: 'InvalidName' },
    { name: 'a name that is not a DNS label', spec: {}, relayName: 'Relay.One', field: 'metadata.name', reason: 'InvalidName' },
    { name: 'smarthost mode without a smarthost', spec: { delivery: { mode: 'smarthost' } }, field: 'spec.delivery.smarthost', reason: 'InvalidCombination' },
    { name: 'a smarthost in mx mode', spec: { delivery: { smarthost: { host: 'smtp.example.net' } } }, field: 'spec.delivery.smarthost', reason: 'InvalidCombination' },
    { name: 'retry.maxAge below the last delay', spec: { delivery: { retry: { schedule: ['1h', '8h'], maxAge: '4h' } } }, field: 'spec.delivery.retry.maxAge', reason: 'InvalidCombination' },
    { name: 'a reserved pod label', spec: { podLabels: { 'app.kubernetes.io/instance': 'x' } }, field: 'spec.podLabels[app.kubernetes.io/instance]', reason: 'ReservedKey' },
    { name: 'a reserved pod annotation', spec: { podAnnotations: { 'mailrelay.io/config-hash': 'x' } }, field: 'spec.podAnnotations[mailrelay.io/config-hash]', reason: 'ReservedKey' },
    { name: 'a missing TLS Secret', spec: { tls: { secretRef: { name: 'absent' } } }, field: 'spec.tls.secretRef.name', reason: 'SecretNotFound', match: /"absent"/ },
    { name: 'a Secret without the key', spec: { auth: { usersSecretRef: { name: 'users', key: 'htpasswd' }, requireTLS: false } }, field: 'spec.auth.usersSecretRef.key', reason: 'SecretKeyMissing', match: /"htpasswd"/ },
    {
      name: 'a smarthost user name that was not revealed',
      spec: { delivery: { mode: 'smarthost', smarthost: { host: 'h', credentialsSecretRef: { name: 'creds' } } } },
      secrets: { creds: secretInput({ stringData: { username: 'u', password: 'p' } }) },
      field: 'spec.delivery.smarthost.credentialsSecretRef.usernameKey', reason: 'SecretKeyMissing',
    },
  ];
  for (const c of cases) {
    it(`reports ${c.name} as ${c.reason} at ${c.field}`, () => {
      const p = only(problems(c.spec, c.secrets ?? SECRETS, c.relayName));
      assert.equal(p.field, c.field);
      assert.equal(p.reason, c.reason);
      if (c.match) assert.match(p.message, c.match);
    });
  }

  it('reports every problem at once, not just the first', () => {
    const list = problems({ relayNetworks: ['x', 'y'], maxMessageSize: 'big' });
    assert.deepEqual(list.map((p) => p.field), ['spec.relayNetworks[0]', 'spec.relayNetworks[1]', 'spec.maxMessageSize']);
  });

  it('reports a Secret missing for two references once per reference', () => {
    const list = problems({ delivery: { mode: 'smarthost', smarthost: { host: 'h', credentialsSecretRef: { name: 'gone' } } } });
    assert.deepEqual(list.map((p) => [p.field, p.reason]), [['spec.delivery.smarthost.credentialsSecretRef.name', 'SecretNotFound']]);
  });
});

describe('fieldPath', () => {
  it('formats indexes and non-identifier keys in brackets', () => {
    assert.equal(fieldPath('spec', ['relayNetworks', 1]), 'spec.relayNetworks[1]');
    assert.equal(fieldPath('spec', ['nodeSelector', 'kubernetes.io/os']), 'spec.nodeSelector[kubernetes.io/os]');
  });
});
