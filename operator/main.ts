// `mailrelay operator`: wiring only. Flags and environment (the chart sets POD_NAME,
// POD_NAMESPACE, WATCH_NAMESPACE, LEADER_ELECTION_LEASE_NAME, RELAY_IMAGE, LOG_LEVEL) ->
// one frozen config -> the controller and the /metrics, /healthz, /readyz server.
// The kubeconfig comes from KUBECONFIG, ~/.kube/config or the in-cluster service account
// (client-node's loadFromDefault). SIGTERM/SIGINT stop reconciling, release the Lease
// (so another replica takes over without waiting for it to expire) and exit 0.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { z } from 'zod';
import type { OperatorMonitoring } from './api/inputs.ts';
import pino from 'pino';
import { Registry } from 'prom-client';
import { startController, type ControllerOptions } from './controller/controller.ts';
import { DEFAULT_LEADER_ELECTION_TIMING } from './controller/leader.ts';
import { kubeconfigSource, preflight } from './controller/preflight.ts';
import { startHealthServer } from './health.ts';
import { createOperatorMetrics } from './metrics.ts';
import { FALLBACK_IMAGE } from './render.ts';
import { mailrelayVersion } from '../relay/version.ts';

/** Usage of `mailrelay operator`. */
export const OPERATOR_USAGE = `usage: mailrelay operator [options]

Runs the MailRelay operator against the cluster of the current kubeconfig
(KUBECONFIG, ~/.kube/config, or the in-cluster service account).

options:
  --namespace NS                 watch one namespace (default: $WATCH_NAMESPACE; empty: all)
  --leader-elect                 reconcile only while holding the leader Lease
  --leader-election-namespace NS namespace of the Lease (default: $POD_NAMESPACE, the
                                 in-cluster namespace, or the kubeconfig's)
  --leader-election-id NAME      Lease name (default: $LEADER_ELECTION_LEASE_NAME or mailrelay-operator-leader)
  --lease-duration S             seconds a Lease is valid (default 15)
  --renew-deadline S             seconds the leader keeps trying to renew (default 10)
  --retry-period S               seconds between tries (default 2)
  --metrics-addr [HOST]:PORT     /metrics, /healthz, /readyz (default :8080)
  --metrics-port PORT            same, port only
  --relay-image REF              image for unset spec.image fields (default: $RELAY_IMAGE)
  --workers N                    MailRelays reconciled in parallel (default 2)
  --queue-poll-interval S        seconds between reads of the relay pods' queues (GET /status:
                                 status.queue, autoscaling, healing; default 15)
  --log-level LEVEL              fatal|error|warn|info|debug|trace (default: $LOG_LEVEL or info)

relay monitoring (the chart sets these from its values):
  --relay-servicemonitor-labels JSON  labels on every relay ServiceMonitor, e.g.
                                 '{"release":"kube-prometheus-stack"}'; a MailRelay's own win
  --relay-relabelings JSON       relabelings added to every relay ServiceMonitor endpoint
  --relay-metric-relabelings JSON  metricRelabelings of every relay ServiceMonitor endpoint
  --fleet-alerts                 the chart installs the fleet-wide alerts: create no
                                 per-MailRelay PrometheusRule (it would page twice)
  --runbook-base-url URL         where alerts' runbook_url points (default: this project's docs)
  -h, --help                     this text
`;

/** The operator's settings, frozen. */
export interface OperatorConfig {
  namespace?: string;
  leaderElection?: { namespace: string; name: string; leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number };
  metricsHost: string;
  metricsPort: number;
  relayImage: string;
  workers: number;
  /** How often the relay pods' /status is read (ms; ADR 0009). */
  queuePollMs: number;
  logLevel: string;
  /** Relay monitoring settings for every MailRelay. */
  monitoring: OperatorMonitoring;
}

const RelabelSchema = z.strictObject({
  sourceLabels: z.array(z.string()).optional(),
  separator: z.string().optional(),
  targetLabel: z.string().optional(),
  regex: z.string().optional(),
  modulus: z.number().int().optional(),
  replacement: z.string().optional(),
  action: z.enum(['replace', 'Replace', 'keep', 'Keep', 'drop', 'Drop', 'hashmod', 'HashMod', 'labelmap', 'LabelMap', 'labeldrop', 'LabelDrop', 'labelkeep', 'LabelKeep', 'lowercase', 'Lowercase', 'uppercase', 'Uppercase', 'keepequal', 'KeepEqual', 'dropequal', 'DropEqual']).optional(),
});

/** A JSON flag checked against a schema; the error names the flag and the field. */
function jsonFlag<T>(flag: string, v: string | undefined, schema: z.ZodType<T>): T | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch {
    throw new UsageError(`--${flag}: not valid JSON: ${v}`);
  }
  const r = schema.safeParse(parsed);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new UsageError(`--${flag}: ${i.path.length > 0 ? `${i.path.join('.')}: ` : ''}${i.message}`);
  }
  return r.data;
}

/** A command-line or environment mistake (exit code 2). */
export class UsageError extends Error {}

/** Splits "[HOST]:PORT" ("[::]:8080", ":8080", "127.0.0.1:0"). */
export function parseListenAddress(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(addr);
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port > 65535) throw new UsageError(`--metrics-addr ${addr}: expected [HOST]:PORT`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

function inClusterNamespace(): string | undefined {
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

const seconds = (flag: string, v: string | undefined, def: number): number => {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${flag} ${v}: expected a positive number of seconds`);
  return Math.round(n * 1000);
};

/** Flags and environment -> the operator's config; `contextNamespace` is the kubeconfig's (the last Lease namespace fallback). Throws UsageError. */
export function parseOperatorConfig(argv: string[], env: NodeJS.ProcessEnv, contextNamespace: () => string | undefined = () => undefined): OperatorConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      namespace: { type: 'string' },
      'leader-elect': { type: 'boolean' },
      'leader-election-namespace': { type: 'string' },
      'leader-election-id': { type: 'string' },
      'lease-duration': { type: 'string' },
      'renew-deadline': { type: 'string' },
      'retry-period': { type: 'string' },
      'metrics-addr': { type: 'string' },
      'metrics-port': { type: 'string' },
      'relay-image': { type: 'string' },
      workers: { type: 'string' },
      'queue-poll-interval': { type: 'string' },
      'log-level': { type: 'string' },
      'relay-servicemonitor-labels': { type: 'string' },
      'relay-relabelings': { type: 'string' },
      'relay-metric-relabelings': { type: 'string' },
      'fleet-alerts': { type: 'boolean' },
      'runbook-base-url': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const monitoring: OperatorMonitoring = {};
  const labels = jsonFlag('relay-servicemonitor-labels', values['relay-servicemonitor-labels'], z.record(z.string().regex(/^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, 'not a label key'), z.string().max(63)));
  if (labels && Object.keys(labels).length > 0) monitoring.serviceMonitorLabels = labels;
  const relabelings = jsonFlag('relay-relabelings', values['relay-relabelings'], z.array(RelabelSchema));
  if (relabelings && relabelings.length > 0) monitoring.relabelings = relabelings;
  const metricRelabelings = jsonFlag('relay-metric-relabelings', values['relay-metric-relabelings'], z.array(RelabelSchema));
  if (metricRelabelings && metricRelabelings.length > 0) monitoring.metricRelabelings = metricRelabelings;
  if (values['fleet-alerts']) monitoring.fleetAlerts = true;
  if (values['runbook-base-url'] !== undefined) {
    if (!/^https?:\/\/\S+[^/\s]$/.test(values['runbook-base-url'])) throw new UsageError(`--runbook-base-url ${values['runbook-base-url']}: expected an http(s) URL without a trailing slash`);
    monitoring.runbookBaseUrl = values['runbook-base-url'];
  }
  let listen = parseListenAddress(values['metrics-addr'] ?? ':8080');
  if (values['metrics-port'] !== undefined) listen = parseListenAddress(`${values['metrics-addr'] ? `[${listen.host}]` : ''}:${values['metrics-port']}`);
  const namespace = (values.namespace ?? env.WATCH_NAMESPACE ?? '').trim();
  const workers = Number(values.workers ?? 2);
  if (!Number.isInteger(workers) || workers < 1) throw new UsageError(`--workers ${values.workers}: expected a positive integer`);
  const logLevel = values['log-level'] ?? env.LOG_LEVEL ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) throw new UsageError(`--log-level ${logLevel}: unknown level`);
  const config: OperatorConfig = {
    metricsHost: listen.host,
    metricsPort: listen.port,
    relayImage: values['relay-image'] ?? env.RELAY_IMAGE ?? FALLBACK_IMAGE,
    workers,
    queuePollMs: seconds('queue-poll-interval', values['queue-poll-interval'], 15_000),
    logLevel,
    monitoring,
  };
  if (namespace !== '') config.namespace = namespace;
  if (values['leader-elect']) {
    const d = DEFAULT_LEADER_ELECTION_TIMING;
    config.leaderElection = {
      namespace: values['leader-election-namespace'] ?? env.POD_NAMESPACE ?? inClusterNamespace() ?? contextNamespace() ?? 'default',
      name: values['leader-election-id'] ?? env.LEADER_ELECTION_LEASE_NAME ?? 'mailrelay-operator-leader',
      leaseDurationMs: seconds('lease-duration', values['lease-duration'], d.leaseDurationMs),
      renewDeadlineMs: seconds('renew-deadline', values['renew-deadline'], d.renewDeadlineMs),
      retryPeriodMs: seconds('retry-period', values['retry-period'], d.retryPeriodMs),
    };
    const le = config.leaderElection;
    if (!(le.retryPeriodMs < le.renewDeadlineMs && le.renewDeadlineMs < le.leaseDurationMs)) {
      throw new UsageError('leader election needs retry-period < renew-deadline < lease-duration');
    }
  }
  return Object.freeze(config);
}

/** Runs the operator until SIGTERM/SIGINT (or `stop` aborts); returns the exit code. */
export async function operatorCommand(argv: string[], runtime: { stop?: AbortSignal; env?: NodeJS.ProcessEnv } = {}): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(OPERATOR_USAGE);
    return 0;
  }
  const env = runtime.env ?? process.env;
  const kc = new KubeConfig();
  let kubeconfigError: Error | undefined;
  try {
    kc.loadFromDefault();
  } catch (err) {
    kubeconfigError = err as Error;
  }
  let config: OperatorConfig;
  try {
    config = parseOperatorConfig(argv, env, () => (kubeconfigError ? undefined : kc.getContextObject(kc.getCurrentContext())?.namespace));
  } catch (err) {
    if (!(err instanceof UsageError) && (err as { code?: string }).code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && (err as { code?: string }).code !== 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw err;
    process.stderr.write(`mailrelay operator: ${(err as Error).message}\n\n${OPERATOR_USAGE}`);
    return 2;
  }
  const source = kubeconfigSource(env);
  if (source === undefined) {
    process.stderr.write('mailrelay operator: no kubeconfig: set KUBECONFIG, create ~/.kube/config, or run in a pod with a service account\n');
    return 1;
  }
  if (kubeconfigError || !kc.getCurrentCluster()) {
    process.stderr.write(`mailrelay operator: no usable kubeconfig (${source}): ${kubeconfigError?.message ?? 'no current cluster'}\n`);
    return 1;
  }
  try {
    await preflight(kc, source, config.namespace);
  } catch (err) {
    process.stderr.write(`mailrelay operator: ${(err as Error).message}\n`);
    return 1;
  }
  const log = pino({ level: config.logLevel, base: { component: 'operator' } });
  const metrics = createOperatorMetrics(new Registry());
  const controllerOpts: ControllerOptions = { kc, metrics, defaultImage: config.relayImage, workers: config.workers, log, monitoring: config.monitoring, queuePollMs: config.queuePollMs };
  if (config.namespace) controllerOpts.namespace = config.namespace;
  if (config.leaderElection) controllerOpts.leaderElection = config.leaderElection;
  const controller = await startController(controllerOpts);
  const health = await startHealthServer({
    host: config.metricsHost,
    port: config.metricsPort,
    registry: metrics.registry,
    ready: () => (controller.synced ? { ok: true, reasons: [] } : { ok: false, reasons: ['informer caches not synced'] }),
  });
  log.info({
    version: mailrelayVersion(), identity: controller.identity, namespace: config.namespace ?? '(all)', metrics: `${config.metricsHost}:${health.port}`,
    leaderElection: config.leaderElection ? `${config.leaderElection.namespace}/${config.leaderElection.name}` : 'off',
  }, 'operator started');

  const signal = await new Promise<string>((resolve) => {
    const on = (s: string) => () => resolve(s);
    process.once('SIGTERM', on('SIGTERM'));
    process.once('SIGINT', on('SIGINT'));
    runtime.stop?.addEventListener('abort', on('abort'));
  });
  log.info({ signal }, 'shutting down: releasing the lease');
  await controller.stop();
  await health.close();
  log.info('stopped');
  return 0;
}
