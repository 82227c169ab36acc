// spec -> relay config: the mapping, the relay's own schema as the final check (with
// its complaints mapped back to spec fields), and no secret value in the ConfigMap.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { parseRelayConfig } from '../../relay/config.ts';
import { secretInput } from '../api/inputs.ts';
import { InvalidMailRelayError, type MailRelay, type MailRelaySpec } from '../api/mailrelay.ts';
import { buildConfigMap, buildRelayConfig, specFieldOfRelayPath } from './configmap.ts';
import { deepFreeze, loadExample } from '../../test/helpers/desired-fixtures.ts';

const relay = (spec: MailRelaySpec): MailRelay => deepFreeze({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'relay', namespace: 'mail' }, spec });

describe('buildRelayConfig', () => {
  it('maps the full example onto the relay config, with files at the mount paths', () => {
    const { mr, inputs } = loadExample('examples/mailrelay-full.yaml');
    const cfg = parseRelayConfig(buildRelayConfig(deepFreeze(mr), deepFreeze(inputs)));
    assert.equal(cfg.inbound.port, 2525);
    assert.deepEqual(cfg.inbound.relayNetworks, ['10.0.0.0/8', 'fd00::/8']);
    assert.equal(cfg.inbound.maxMessageSize, 35 * 1024 * 1024);
    assert.deepEqual(cfg.inbound.tls, { certFile: '/etc/mailrelay/tls/tls.crt', keyFile: '/etc/mailrelay/tls/tls.key' });
    assert.equal(cfg.inbound.authUsersFile, '/etc/mailrelay/secrets/auth/users');
    assert.equal(cfg.spool.dir, '/var/spool/mailrelay');
    assert.equal(cfg.http.port, 9090);
    assert.equal(cfg.http.drainTokenFile, '/etc/mailrelay/secrets/drain/token', 'the drain-token Secret\'s mount (statefulset.ts)');
    assert.equal(cfg.drain.timeout, 120);
    assert.equal(cfg.log.level, 'debug');
    const d = cfg.delivery;
    assert.equal(d.mode, 'smarthost');
    assert.deepEqual(d.smarthost, {
      host: 'smtp.example.net', port: 465, tls: 'implicit', caFile: '/etc/mailrelay/secrets/smarthost-ca/ca.crt', serverName: 'smtp.example.net', insecureSkipVerify: false,
      auth: { usernameFile: '/etc/mailrelay/secrets/smarthost/username', passwordFile: '/etc/mailrelay/secrets/smarthost/password' },
    });
    assert.equal(d.heloName, 'relay.example.com');
    assert.equal(d.pipelining, true);
    assert.equal(d.chunking, false);
    assert.equal(d.maxRecipientsPerTransaction, 50);
    assert.equal(d.concurrencyPerDestination, 4);
    assert.deepEqual(d.retry.schedule, [60, 300, 1800, 7200]);
    assert.equal(d.retry.maxAge, 72 * 3600);
    assert.equal(d.overQuotaPolicy, 'retry');
    assert.deepEqual(d.dkim, { domain: 'example.com', selector: 'relay2024', keyFile: '/etc/mailrelay/secrets/dkim/private.key' });
    assert.equal(cfg.workers, 2);
    assert.deepEqual(cfg.inbound.proxyProtocol, { trustedNetworks: ['10.0.64.0/20'], headerTimeout: 10 });
    assert.equal(cfg.inbound.greetingDelay, 0.1);
  });

  it('runs one relay process per CPU the container may use, unless spec.workers says otherwise', () => {
    const workers = (spec: MailRelaySpec): number => parseRelayConfig(buildRelayConfig(relay(spec), { secrets: {} })).workers;
    assert.equal(workers({}), 1, 'no CPU limit: nothing says the pod may use more than one core');
    assert.equal(workers({ resources: { requests: { cpu: '4' } } }), 1, 'a request is not a limit');
    assert.equal(workers({ resources: { limits: { cpu: '1' } } }), 1);
    assert.equal(workers({ resources: { limits: { cpu: '1500m' } } }), 2);
    assert.equal(workers({ resources: { limits: { cpu: 3 } } }), 3);
    assert.equal(workers({ workers: 1, resources: { limits: { cpu: '8' } } }), 1);
    assert.equal(workers({ workers: 4 }), 4);
  });

  it('renders PROXY protocol and the greeting delay only when the spec asks for them', () => {
    const cfg = parseRelayConfig(buildRelayConfig(relay({}), { secrets: {} }));
    assert.equal(cfg.inbound.proxyProtocol, undefined);
    assert.equal(cfg.inbound.greetingDelay, 0);
    const lb = parseRelayConfig(buildRelayConfig(relay({ service: { type: 'LoadBalancer', proxyProtocol: { trustedNetworks: ['10.1.0.0/16', 'fd00:1::/64'] } }, greetingDelay: '250ms' }), { secrets: {} }));
    assert.deepEqual(lb.inbound.proxyProtocol?.trustedNetworks, ['10.1.0.0/16', 'fd00:1::/64']);
    assert.equal(lb.inbound.greetingDelay, 0.25);
  });

  it('leaves TLS, AUTH, smarthost and DKIM out when the spec has none', () => {
    const cfg = parseRelayConfig(buildRelayConfig(relay({}), { secrets: {} }));
    assert.equal(cfg.inbound.tls, undefined);
    assert.equal(cfg.inbound.authUsersFile, undefined);
    assert.equal(cfg.delivery.mode, 'mx');
    assert.equal(cfg.delivery.smarthost, undefined);
    assert.equal(cfg.delivery.dkim, undefined);
    assert.deepEqual(cfg.inbound.relayNetworks, []);
    assert.equal(cfg.http.drainTokenFile, '/etc/mailrelay/secrets/drain/token', 'every relay reads the drain token');
  });

  it('reports what the relay schema rejects under the spec field it came from', () => {
    // 0.5 bytes passes the quantity check but is no whole byte count for the relay.
    assert.throws(() => buildRelayConfig(relay({ maxMessageSize: '500m' }), { secrets: {} }), (e: unknown) => {
      assert.ok(e instanceof InvalidMailRelayError);
      assert.deepEqual(e.problems.map((p) => [p.field, p.reason]), [['spec.maxMessageSize', 'InvalidRelayConfig']]);
      return true;
    });
  });

  it('maps relay config paths to spec fields', () => {
    assert.equal(specFieldOfRelayPath('inbound.relayNetworks.1'), 'spec.relayNetworks[1]');
    assert.equal(specFieldOfRelayPath('delivery.retry.schedule.0'), 'spec.delivery.retry.schedule[0]');
    assert.equal(specFieldOfRelayPath('delivery.smarthost.auth.usernameFile'), 'spec.delivery.smarthost.credentialsSecretRef.usernameKey');
    assert.equal(specFieldOfRelayPath('delivery.smarthost.caFile'), 'spec.delivery.smarthost.caSecretRef');
    assert.equal(specFieldOfRelayPath('delivery.mtaSts.enabled'), 'spec.delivery.mtaSts.enabled');
    assert.equal(specFieldOfRelayPath('drain.timeout'), 'spec.drainTimeout');
    assert.equal(specFieldOfRelayPath('inbound.proxyProtocol.trustedNetworks.0'), 'spec.service.proxyProtocol.trustedNetworks[0]');
    assert.equal(specFieldOfRelayPath('workers'), 'spec.workers');
    assert.equal(specFieldOfRelayPath('something.else'), 'spec');
  });
});

describe('outbound TLS trust in the relay config (issue 9)', () => {
  it('renders the smarthost CA, serverName and the opt-out; verification stays on by default', () => {
    const base = parseRelayConfig(buildRelayConfig(relay({ delivery: { mode: 'smarthost', smarthost: { host: '192.0.2.10' } } }), { secrets: {} }));
    assert.equal(base.delivery.smarthost?.insecureSkipVerify, false);
    assert.equal(base.delivery.smarthost?.caFile, undefined, 'the default CAs');
    const spec: MailRelaySpec = { delivery: { mode: 'smarthost', smarthost: { host: '192.0.2.10', serverName: 'smtp.example.net', caSecretRef: { name: 'ca' }, insecureSkipVerify: true } } };
    const cfg = parseRelayConfig(buildRelayConfig(relay(spec), { secrets: {} }));
    assert.equal(cfg.delivery.smarthost?.caFile, '/etc/mailrelay/secrets/smarthost-ca/ca.crt');
    assert.equal(cfg.delivery.smarthost?.serverName, 'smtp.example.net');
    assert.equal(cfg.delivery.smarthost?.insecureSkipVerify, true);
  });

  it('renders MTA-STS for mode mx, on unless switched off', () => {
    assert.equal(parseRelayConfig(buildRelayConfig(relay({}), { secrets: {} })).delivery.mtaSts.enabled, true);
    const off = buildRelayConfig(relay({ delivery: { mtaSts: { enabled: false } } }), { secrets: {} });
    assert.deepEqual(off.delivery?.mtaSts, { enabled: false });
  });
});

describe('buildConfigMap', () => {
  it('carries relay.yaml and no secret value', () => {
    const spec: MailRelaySpec = { delivery: { mode: 'smarthost', smarthost: { host: 'h', credentialsSecretRef: { name: 'c' } } } };
    const secrets = { c: secretInput({ stringData: { username: 'unique-user-7f3', password: 'hunter2-very-secret' } }, ['username']) };
    const cm = buildConfigMap(relay(spec), { secrets });
    const text = (cm.data as Record<string, string>)['relay.yaml'] ?? '';
    assert.ok(!text.includes('hunter2-very-secret'));
    assert.equal((parse(text) as { delivery: { smarthost: { auth: { usernameFile: string } } } }).delivery.smarthost.auth.usernameFile, '/etc/mailrelay/secrets/smarthost/username');
    assert.ok(!text.includes('unique-user-7f3'), 'the user name is a mounted file, not inline');
    assert.equal(cm.metadata.name, 'relay-config');
  });
});
