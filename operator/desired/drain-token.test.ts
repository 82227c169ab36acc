// The drain-token Secret the controller creates: named after the MailRelay, owned by it,
// with the standard labels, and carrying the token under the key the pods mount.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MailRelay } from '../api/mailrelay.ts';
import { drainTokenFromSecrets } from '../controller/relay-client.ts';
import { buildDrainTokenSecret } from './drain-token.ts';
import { standardLabels } from './labels.ts';
import { deepFreeze } from '../../test/helpers/desired-fixtures.ts';

const relay: MailRelay = deepFreeze({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'relay', namespace: 'mail', uid: 'u1' }, spec: {} });

describe('buildDrainTokenSecret', () => {
  const secret = buildDrainTokenSecret(relay, 'tok-123_-');

  it('is an Opaque Secret <name>-drain-token with the standard labels and an ownerReference to the MailRelay', () => {
    assert.equal(secret.apiVersion, 'v1');
    assert.equal(secret.kind, 'Secret');
    assert.equal(secret.type, 'Opaque');
    assert.equal(secret.metadata.name, 'relay-drain-token');
    assert.equal(secret.metadata.namespace, 'mail');
    assert.deepEqual(secret.metadata.labels, standardLabels(relay));
    assert.deepEqual(secret.metadata.ownerReferences, [{ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', name: 'relay', uid: 'u1', controller: true, blockOwnerDeletion: true }]);
  });

  it('carries the token under `token`, where the operator\'s drain client reads it', () => {
    assert.deepEqual(secret.data, { token: Buffer.from('tok-123_-').toString('base64') });
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'relay-0', namespace: 'mail', labels: { 'app.kubernetes.io/instance': 'relay' } } };
    assert.equal(drainTokenFromSecrets({ get: (ns, name) => (ns === 'mail' && name === 'relay-drain-token' ? secret : undefined) })(pod), 'tok-123_-');
  });
});
