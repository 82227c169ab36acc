import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRelayConfig, ConfigError, relayConfigJsonSchema } from './config.ts';

test('an empty config is valid, closed, durable, and delivers by MX', () => {
  const c = parseRelayConfig({});
  assert.deepEqual(c.inbound.relayNetworks, [], 'never an open relay by default');
  assert.equal(c.spool.fsync, true);
  assert.equal(c.delivery.mode, 'mx');
  assert.equal(c.delivery.maxRecipientsPerTransaction, 100);
  assert.equal(c.delivery.overQuotaPolicy, 'bounce');
  assert.equal(c.delivery.retry.maxAge, 432000);
  assert.equal(c.delivery.timeouts.dataTerm, 600);
});

test('errors name every bad field by its path', () => {
  try {
    parseRelayConfig({ inbound: { relayNetworks: ['10.0.0.0/8', '10.0.0.300/8'], port: 70000 }, delivery: { mode: 'smarthost' } });
    assert.fail('should throw');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const paths = err.issues.map((i) => i.path).sort();
    assert.deepEqual(paths, ['delivery.smarthost', 'inbound.port', 'inbound.relayNetworks.1']);
    assert.match(err.message, /inbound\.relayNetworks\.1: not a valid CIDR/);
  }
});

test('the JSON Schema export describes the fields', () => {
  const s = relayConfigJsonSchema() as { properties: Record<string, unknown> };
  assert.ok(s.properties.inbound && s.properties.delivery && s.properties.spool);
});

test('an unknown key is an error that names it, at any depth (issue 13: typos ran with defaults)', () => {
  const cases: [unknown, string][] = [
    [{ spoool: { dir: '/x' } }, 'spoool'],
    [{ delivery: { maxRecipientPerTransaction: 5 } }, 'delivery.maxRecipientPerTransaction'],
    [{ delivery: { retry: { shedule: [1] } } }, 'delivery.retry.shedule'],
    [{ delivery: { destinations: { 'example.com': { concurency: 2 } } } }, 'delivery.destinations.example.com.concurency'],
    [{ inbound: { spf: { enable: true } } }, 'inbound.spf.enable'],
    [{ delivery: { mode: 'smarthost', smarthost: { host: 'h', auth: { username: 'u', passwordFile: '/p', pasword: 'x' } } } }, 'delivery.smarthost.auth.pasword'],
  ];
  for (const [input, key] of cases) {
    assert.throws(() => parseRelayConfig(input), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      const dot = key.lastIndexOf('.');
      const [parent, name] = dot < 0 ? ['', key] : [key.slice(0, dot), key.slice(dot + 1)];
      assert.ok(err.issues.some((i) => i.path === parent && i.message.includes(`"${name}"`)), `${key}: ${err.message}`);
      assert.match(err.message, new RegExp(`unknown key "${name}"`));
      return true;
    });
  }
});

test('the JSON Schema closes every object (additionalProperties: false)', () => {
  const open: string[] = [];
  const walk = (n: Record<string, unknown>, path: string): void => {
    if (n.type === 'object' && n.properties && n.additionalProperties !== false) open.push(path || '(root)');
    for (const [k, v] of Object.entries((n.properties ?? {}) as Record<string, Record<string, unknown>>)) walk(v, path ? `${path}.${k}` : k);
    if (n.additionalProperties && typeof n.additionalProperties === 'object') walk(n.additionalProperties as Record<string, unknown>, `${path}.<name>`);
    for (const alt of (n.anyOf ?? []) as Record<string, unknown>[]) walk(alt, path);
    if (n.items && typeof n.items === 'object') walk(n.items as Record<string, unknown>, `${path}[]`);
  };
  walk(relayConfigJsonSchema() as Record<string, unknown>, '');
  assert.deepEqual(open, []);
});

test('outbound TLS defaults: the smarthost is verified, MX TLS stays opportunistic, MTA-STS is on (issue 9)', () => {
  const c = parseRelayConfig({ delivery: { mode: 'smarthost', smarthost: { host: 'smtp.example.net' } } });
  assert.equal(c.delivery.smarthost?.tls, 'required');
  assert.equal(c.delivery.smarthost?.insecureSkipVerify, false);
  assert.equal(c.delivery.tls, 'opportunistic');
  assert.equal(c.delivery.tlsVerify, false);
  assert.deepEqual(c.delivery.mtaSts, { enabled: true, cacheSize: 10_000, fetchTimeout: 10, port: 443 });
});

test('credentials with tls none are refused at start: they would never be sent anyway', () => {
  const sh = { host: 'smtp.example.net', tls: 'none', auth: { username: 'u', passwordFile: '/p' } };
  assert.throws(() => parseRelayConfig({ delivery: { mode: 'smarthost', smarthost: sh } }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.issues.map((i) => i.path), ['delivery.smarthost.tls']);
    assert.match(err.message, /credentials are never sent in cleartext/);
    return true;
  });
  for (const tls of ['required', 'implicit', 'opportunistic']) parseRelayConfig({ delivery: { mode: 'smarthost', smarthost: { ...sh, tls } } });
});
