// spec -> the relay's config (relay/config.ts, the one contract between operator and
// relay) -> the ConfigMap that carries it. The relay's own parseRelayConfig checks the
// result, so anything the relay would refuse at start is refused here first, naming
// the spec field. Secrets stay out of the ConfigMap: the config names mounted files.
import { stringify } from 'yaml';
import { ConfigError, parseRelayConfig, type RelayConfigInput } from '../../relay/config.ts';
import type { MailRelayInputs } from '../api/inputs.ts';
import { InvalidMailRelayError, withDefaults, type MailRelay, type ValidationProblem } from '../api/mailrelay.ts';
import { parseDuration } from '../api/duration.ts';
import { parseQuantity } from '../api/quantity.ts';
import { CONFIG_KEY, DRAIN_TOKEN_FILE, HTTP_PORT, SMTP_PORT, SPOOL_DIR, secretFile } from './layout.ts';
import { childMeta } from './meta.ts';
import { childNames } from './names.ts';
import type { KubeObject } from './meta.ts';

const seconds = (d: string): number => parseDuration(d) ?? Number.NaN;

/** Relay config path prefixes and the spec fields they come from (longest match wins). */
const RELAY_TO_SPEC: readonly (readonly [string, string])[] = [
  ['inbound.relayNetworks', 'spec.relayNetworks'],
  ['inbound.maxMessageSize', 'spec.maxMessageSize'],
  ['inbound.tls', 'spec.tls'],
  ['inbound.authUsersFile', 'spec.auth'],
  ['inbound.requireTlsForAuth', 'spec.auth.requireTLS'],
  ['inbound.spf', 'spec.senderVerification.spf'],
  ['inbound.proxyProtocol', 'spec.service.proxyProtocol'],
  ['inbound.greetingDelay', 'spec.greetingDelay'],
  ['delivery.smarthost.auth.usernameFile', 'spec.delivery.smarthost.credentialsSecretRef.usernameKey'],
  ['delivery.smarthost.auth', 'spec.delivery.smarthost.credentialsSecretRef'],
  ['delivery.smarthost.caFile', 'spec.delivery.smarthost.caSecretRef'],
  ['delivery.dkim.keyFile', 'spec.delivery.dkim.keySecretRef'],
  ['delivery', 'spec.delivery'],
  ['drain.timeout', 'spec.drainTimeout'],
  ['workers', 'spec.workers'],
  ['log.level', 'spec.logLevel'],
];

/** Maps a relay config path ('inbound.relayNetworks.1') to the spec field it came from ('spec.relayNetworks[1]'). */
export function specFieldOfRelayPath(path: string): string {
  const match = [...RELAY_TO_SPEC].sort((a, b) => b[0].length - a[0].length)
    .find(([relay]) => path === relay || path.startsWith(`${relay}.`));
  if (!match) return 'spec';
  const rest = path.slice(match[0].length).split('.').filter((s) => s !== '');
  return match[1] + rest.map((s) => (/^\d+$/.test(s) ? `[${s}]` : `.${s}`)).join('');
}

/**
 * Relay processes per pod (ADR 0007): spec.workers, else the container's CPU limit rounded up
 * (a relay given two cores uses both), else 1. A CPU request alone says nothing about what
 * the pod may use, so it is not taken.
 */
export function relayWorkers(spec: Pick<ReturnType<typeof withDefaults>, 'workers' | 'resources'>): number {
  if (spec.workers !== undefined) return spec.workers;
  const limit = spec.resources?.limits?.cpu;
  const cores = limit === undefined ? undefined : typeof limit === 'number' ? limit : parseQuantity(limit);
  return cores !== undefined && cores !== null && cores > 0 ? Math.min(64, Math.ceil(cores)) : 1;
}

/**
 * The relay config for a MailRelay: everything the spec decides, plus the fixed ports
 * and mount paths of the pod. Checked with the relay's parseRelayConfig; throws
 * InvalidMailRelayError (reason InvalidRelayConfig) naming the spec field if it fails.
 */
export function buildRelayConfig(mr: Pick<MailRelay, 'metadata' | 'spec'>, _inputs: Pick<MailRelayInputs, 'secrets'>): RelayConfigInput {
  const spec = withDefaults(mr.spec);
  const d = spec.delivery;
  const inbound: NonNullable<RelayConfigInput['inbound']> = {
    port: SMTP_PORT,
    relayNetworks: [...spec.relayNetworks],
    maxMessageSize: Math.floor(parseQuantity(spec.maxMessageSize) ?? Number.NaN),
  };
  if (spec.service.proxyProtocol) inbound.proxyProtocol = { trustedNetworks: [...spec.service.proxyProtocol.trustedNetworks] };
  if (spec.greetingDelay) inbound.greetingDelay = seconds(spec.greetingDelay);
  if (spec.tls) inbound.tls = { certFile: secretFile('tlsCert'), keyFile: secretFile('tlsKey') };
  const spf = spec.senderVerification.spf;
  if (spf.enabled) inbound.spf = { enabled: true, policy: spf.policy, skipTrusted: spf.skipTrusted };
  if (spec.auth) {
    inbound.authUsersFile = secretFile('authUsers');
    inbound.requireTlsForAuth = spec.auth.requireTLS;
  }
  const delivery: NonNullable<RelayConfigInput['delivery']> = {
    mode: d.mode,
    pipelining: d.pipelining,
    chunking: d.chunking,
    maxRecipientsPerTransaction: d.maxRecipientsPerTransaction,
    concurrencyPerDestination: d.concurrencyPerDestination,
    retry: { schedule: d.retry.schedule.map(seconds), maxAge: seconds(d.retry.maxAge) },
    overQuotaPolicy: d.overQuotaPolicy,
  };
  if (d.heloName) delivery.heloName = d.heloName;
  if (d.mode === 'mx') delivery.mtaSts = { enabled: d.mtaSts.enabled };
  if (d.smarthost) {
    const sh = d.smarthost;
    delivery.smarthost = { host: sh.host, port: sh.port, tls: sh.tls };
    if (sh.caSecretRef) delivery.smarthost.caFile = secretFile('smarthostCa');
    if (sh.serverName) delivery.smarthost.serverName = sh.serverName;
    if (sh.insecureSkipVerify) delivery.smarthost.insecureSkipVerify = true;
    if (sh.credentialsSecretRef) {
      // Both halves of the credentials are files mounted from the Secret, so the ConfigMap
      // holds no secret and a rotated user name rolls the pods through the config hash.
      delivery.smarthost.auth = { usernameFile: secretFile('smarthostUsername'), passwordFile: secretFile('smarthostPassword') };
    }
  }
  if (d.dkim) delivery.dkim = { domain: d.dkim.domain, selector: d.dkim.selector, keyFile: secretFile('dkimKey') };
  const config: RelayConfigInput = {
    workers: relayWorkers(spec),
    inbound,
    spool: { dir: SPOOL_DIR, fsync: true },
    delivery,
    // The token file is the operator's drain-token Secret, mounted optional: until it
    // exists the relay reads no token and takes /drain from loopback only (ADR 0003 R2).
    // Always rendered, so creating the Secret changes neither relay.yaml nor the config hash.
    http: { port: HTTP_PORT, drainTokenFile: DRAIN_TOKEN_FILE },
    drain: { timeout: seconds(spec.drainTimeout) },
    log: { level: spec.logLevel },
  };
  try {
    parseRelayConfig(config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const problems: ValidationProblem[] = err.issues.map((i) => ({
      field: specFieldOfRelayPath(i.path), reason: 'InvalidRelayConfig', message: `relay config ${i.path || '(root)'}: ${i.message}`,
    }));
    throw new InvalidMailRelayError(problems);
  }
  return config;
}

/** relay.yaml as it goes into the ConfigMap: sorted keys, a header naming its source. */
export function renderRelayYaml(mr: Pick<MailRelay, 'metadata' | 'spec'>, inputs: Pick<MailRelayInputs, 'secrets'>): string {
  const where = mr.metadata.namespace ? `${mr.metadata.namespace}/${mr.metadata.name}` : mr.metadata.name;
  return `# Rendered by mailrelay-operator from MailRelay ${where}; edit the MailRelay, not this.\n`
    + stringify(buildRelayConfig(mr, inputs), { sortMapEntries: true, lineWidth: 0 });
}

/** The ConfigMap holding relay.yaml. */
export function buildConfigMap(mr: MailRelay, inputs: Pick<MailRelayInputs, 'secrets'>): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: childMeta(mr, childNames(mr).configMap),
    data: { [CONFIG_KEY]: renderRelayYaml(mr, inputs) },
  };
}
