import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { drainTokenFromSecrets, podBaseUrl, sumMetric } from './relay-client.ts';

const TEXT = `# HELP mailrelay_queue_messages Messages in the spool by state
# TYPE mailrelay_queue_messages gauge
mailrelay_queue_messages{state="queued"} 3
mailrelay_queue_messages{state="deferred"} 4
mailrelay_queue_messages_total 99
mailrelay_draining 1
weird{label="a \\" b",state="queued"} 2 1700000000000
`;

describe('relay pod client helpers', () => {
  it('sums a metric over its series, optionally filtered by labels', () => {
    assert.equal(sumMetric(TEXT, 'mailrelay_queue_messages'), 7);
    assert.equal(sumMetric(TEXT, 'mailrelay_queue_messages', { state: 'deferred' }), 4);
    assert.equal(sumMetric(TEXT, 'mailrelay_draining'), 1);
    assert.equal(sumMetric(TEXT, 'weird', { state: 'queued' }), 2, 'escaped quotes and timestamps');
    assert.equal(sumMetric(TEXT, 'absent'), undefined);
  });

  it('addresses a pod by its IP on the relay HTTP port', () => {
    const pod = (podIP?: string) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, status: podIP ? { podIP } : {} });
    assert.equal(podBaseUrl(pod('10.1.2.3')), 'http://10.1.2.3:9090');
    assert.equal(podBaseUrl(pod('fd00::1')), 'http://[fd00::1]:9090');
    assert.equal(podBaseUrl(pod()), undefined);
  });

  it('finds the drain token in the Secret of the pod\'s MailRelay', () => {
    const secrets = new Map([['mail/relay-drain-token', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'relay-drain-token', namespace: 'mail' }, data: { token: Buffer.from('s3cret\n').toString('base64') } }]]);
    const token = drainTokenFromSecrets({ get: (ns, name) => secrets.get(`${ns}/${name}`) });
    const pod = (instance?: string) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'relay-1', namespace: 'mail', ...(instance ? { labels: { 'app.kubernetes.io/instance': instance } } : {}) } });
    assert.equal(token(pod('relay')), 's3cret');
    assert.equal(token(pod('other')), undefined);
    assert.equal(token(pod()), undefined);
  });
});
