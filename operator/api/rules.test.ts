// Each cross-field rule, both ways: a spec that breaks it and one that keeps it. The
// TypeScript side is run here; the CEL side is checked to be in the generated CRD at
// the right node with the same message (the API server evaluates it).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CROSS_FIELD_RULES } from './rules.ts';
import { buildOpenApiSchema } from './crd.ts';
import { withDefaults, type MailRelaySpec } from './mailrelay.ts';
import type { JsonSchema } from './json-schema.ts';

/** For each rule (by id): a spec that violates it and one that satisfies it. */
const EXAMPLES: Record<string, { bad: MailRelaySpec; good: MailRelaySpec; name?: [string, string] }> = {
  'name-fits': { bad: {}, good: {}, name: ['this-name-is-far-too-long-for-a-statefulset-pod-name-x', 'relay-1'] },
  'smarthost-required': { bad: { delivery: { mode: 'smarthost' } }, good: { delivery: { mode: 'smarthost', smarthost: { host: 'smtp.example.net' } } } },
  'smarthost-forbidden-in-mx': { bad: { delivery: { smarthost: { host: 'h' } } }, good: { delivery: { mode: 'smarthost', smarthost: { host: 'h' } } } },
  'smarthost-credentials-need-tls': {
    bad: { delivery: { mode: 'smarthost', smarthost: { host: 'h', tls: 'opportunistic', credentialsSecretRef: { name: 'c' } } } },
    good: { delivery: { mode: 'smarthost', smarthost: { host: 'h', tls: 'implicit', credentialsSecretRef: { name: 'c' } } } },
  },
  'smarthost-ca-or-skip-verify': {
    bad: { delivery: { mode: 'smarthost', smarthost: { host: 'h', caSecretRef: { name: 'ca' }, insecureSkipVerify: true } } },
    good: { delivery: { mode: 'smarthost', smarthost: { host: 'h', caSecretRef: { name: 'ca' } } } },
  },
  'max-age-covers-schedule': { bad: { delivery: { retry: { schedule: ['1m', '2h'], maxAge: '1h' } } }, good: { delivery: { retry: { schedule: ['1m', '2h'], maxAge: '2h' } } } },
  'auth-needs-tls': {
    bad: { auth: { usersSecretRef: { name: 'u' } } },
    good: { auth: { usersSecretRef: { name: 'u' } }, tls: { secretRef: { name: 't' } } },
  },
  'grace-exceeds-drain': { bad: { drainTimeout: '2m', terminationGracePeriodSeconds: 120 }, good: { drainTimeout: '2m', terminationGracePeriodSeconds: 121 } },
  'traffic-policy-needs-external': { bad: { service: { externalTrafficPolicy: 'Local' } }, good: { service: { type: 'NodePort', externalTrafficPolicy: 'Local' } } },
  'source-ranges-need-loadbalancer': { bad: { service: { type: 'NodePort', loadBalancerSourceRanges: ['10.0.0.0/8'] } }, good: { service: { type: 'LoadBalancer', loadBalancerSourceRanges: ['10.0.0.0/8'] } } },
  'timeout-needs-drain': { bad: { scaleDown: { policy: 'Immediate', timeout: '1h' } }, good: { scaleDown: { policy: 'Drain', timeout: '1h' } } },
  'autoscaling-min-le-max': { bad: { autoscaling: { minReplicas: 3, maxReplicas: 2 } }, good: { autoscaling: { minReplicas: 2, maxReplicas: 2 } } },
  'replicas-or-autoscaling': {
    bad: { replicas: 2, autoscaling: { maxReplicas: 4 } },
    good: { replicas: 2, autoscaling: { mode: 'keda', maxReplicas: 4, keda: { serverAddress: 'http://prometheus:9090' } } },
  },
  'autoscaling-drains': { bad: { autoscaling: { maxReplicas: 4 }, scaleDown: { policy: 'Immediate' } }, good: { autoscaling: { maxReplicas: 4 }, scaleDown: { policy: 'Drain' } } },
  'keda-needs-prometheus': { bad: { autoscaling: { mode: 'keda', maxReplicas: 4 } }, good: { autoscaling: { mode: 'keda', maxReplicas: 4, keda: { serverAddress: 'http://prometheus:9090' } } } },
  'keda-settings-need-keda-mode': { bad: { autoscaling: { maxReplicas: 4, keda: { serverAddress: 'http://prometheus:9090' } } }, good: { autoscaling: { maxReplicas: 4 } } },
};

function nodeAt(root: JsonSchema, at: string): JsonSchema {
  return at === '' ? root : at.split('.').reduce<JsonSchema>((n, p) => n.properties?.[p] ?? assert.fail(`no node ${at}`), root);
}

describe('cross-field rules', () => {
  const schema = buildOpenApiSchema();
  for (const rule of CROSS_FIELD_RULES) {
    it(`${rule.id}: CEL in the CRD at "${rule.at || '(root)'}" with the shared message`, () => {
      const list = (nodeAt(schema, rule.at)['x-kubernetes-validations'] ?? []) as { rule: string; message: string; fieldPath?: string }[];
      assert.ok(list.some((r) => r.rule === rule.cel && r.message === rule.message && r.fieldPath === rule.fieldPath), JSON.stringify(list));
      if (rule.fieldPath) {
        // The API server rejects a CRD whose fieldPath names no field of the schema.
        assert.match(rule.fieldPath, /^\.[A-Za-z]+$/);
        assert.ok(nodeAt(schema, rule.at).properties?.[rule.fieldPath.slice(1)], `${rule.id}: ${rule.fieldPath} is not a field at "${rule.at}"`);
      }
    });
    if (!rule.holds) {
      it(`${rule.id}: a transition rule (compares with oldSelf), so only the API server checks it`, () => {
        assert.match(rule.cel, /oldSelf/);
      });
      continue;
    }
    const ex = EXAMPLES[rule.id];
    it(`${rule.id}: holds for a good spec and not for a bad one`, () => {
      assert.ok(ex, `add an example for ${rule.id} to EXAMPLES`);
      const [badName, goodName] = ex.name ?? ['relay', 'relay'];
      assert.equal(rule.holds?.(withDefaults(ex.bad), badName), false);
      assert.equal(rule.holds?.(withDefaults(ex.good), goodName), true);
    });
  }

  it('rule ids are unique', () => {
    assert.equal(new Set(CROSS_FIELD_RULES.map((r) => r.id)).size, CROSS_FIELD_RULES.length);
  });

  it('CEL only reads fields that exist in the schema at its node', () => {
    for (const rule of CROSS_FIELD_RULES) {
      const node = nodeAt(schema, rule.at);
      for (const m of rule.cel.matchAll(/(?:self|oldSelf)\.([A-Za-z]+)/g)) {
        assert.ok(node.properties?.[m[1]!], `${rule.field}: ${m[1]} is not a property at "${rule.at}"`);
      }
    }
  });
});
