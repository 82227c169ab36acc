// buildDesired: every child, valid, owned by the MailRelay, in apply order, the same
// every time, and without touching its input.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { InvalidMailRelayError, type MailRelay } from '../api/mailrelay.ts';
import { APPLY_ORDER, buildDesired } from './index.ts';
import { deepFreeze, loadExample, TEST_UID, validateKubeObject } from '../../test/helpers/desired-fixtures.ts';

describe('buildDesired', () => {
  const { mr, inputs } = loadExample('examples/mailrelay-full.yaml', { capabilities: true });
  const objects = buildDesired(deepFreeze(mr), deepFreeze(inputs));

  it('builds every child, in apply order', () => {
    assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`), [
      'NetworkPolicy/full', 'ConfigMap/full-config', 'Service/full-headless', 'Service/full',
      'PodDisruptionBudget/full', 'StatefulSet/full', 'ServiceMonitor/full', 'PrometheusRule/full',
    ]);
    const ranks = objects.map((o) => APPLY_ORDER.indexOf(o.kind as (typeof APPLY_ORDER)[number]));
    assert.deepEqual(ranks, [...ranks].sort((a, b) => a - b));
  });

  it('every child validates and sits in the MailRelay\'s namespace', () => {
    for (const o of objects) {
      validateKubeObject(o);
      assert.equal(o.metadata.namespace, 'mail');
      assert.equal(o.metadata.labels?.['app.kubernetes.io/managed-by'], 'mailrelay-operator');
    }
  });

  it('every child has one controller ownerReference to the MailRelay', () => {
    for (const o of objects) {
      assert.deepEqual(o.metadata.ownerReferences, [
        { apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', name: 'full', uid: TEST_UID, controller: true, blockOwnerDeletion: true },
      ], `${o.kind}/${o.metadata.name}`);
    }
  });

  it('is deterministic and shares no object between children (no YAML aliases)', () => {
    const again = buildDesired(mr, inputs);
    assert.deepEqual(again, objects);
    const yaml = objects.map((o) => stringify(o)).join('---\n');
    assert.doesNotMatch(yaml, /(^|\s)[&*]a\d+/m);
  });

  it('leaves out optional children unless enabled and available', () => {
    const minimal = loadExample('examples/mailrelay-minimal.yaml');
    assert.deepEqual(buildDesired(minimal.mr, minimal.inputs).map((o) => o.kind), ['ConfigMap', 'Service', 'Service', 'PodDisruptionBudget', 'StatefulSet']);
    const noMonitoringCrds = buildDesired(mr, { ...inputs, capabilities: {} }).map((o) => o.kind);
    assert.ok(!noMonitoringCrds.includes('ServiceMonitor') && !noMonitoringCrds.includes('PrometheusRule'));
    const disabled: MailRelay = { ...mr, spec: { ...mr.spec, podDisruptionBudget: { enabled: false }, networkPolicy: { enabled: false }, monitoring: { serviceMonitor: { enabled: false }, prometheusRule: { enabled: false } } } };
    assert.deepEqual(buildDesired(disabled, inputs).map((o) => o.kind), ['ConfigMap', 'Service', 'Service', 'StatefulSet']);
  });

  it('adds no ownerReference without a uid (a made-up one would get the child garbage-collected)', () => {
    const noUid: MailRelay = { ...mr, metadata: { ...mr.metadata, uid: undefined } };
    for (const o of buildDesired(noUid, inputs)) assert.equal(o.metadata.ownerReferences, undefined);
  });

  it('throws InvalidMailRelayError for an invalid MailRelay: schema problems first, Secrets once the spec parses', () => {
    const bad: MailRelay = { ...mr, spec: { ...mr.spec, relayNetworks: ['10.0.0.0/33'], tls: { secretRef: { name: 'missing' } } } };
    assert.throws(() => buildDesired(bad, inputs), (e: unknown) => {
      assert.ok(e instanceof InvalidMailRelayError);
      assert.deepEqual(e.problems.map((p) => `${p.field} ${p.reason}`), ['spec.relayNetworks[0] InvalidCIDR']);
      return true;
    });
    const noSecret: MailRelay = { ...mr, spec: { ...mr.spec, tls: { secretRef: { name: 'missing' } } } };
    assert.throws(() => buildDesired(noSecret, inputs), /spec\.tls\.secretRef\.name: Secret "missing" not found/);
  });
});
