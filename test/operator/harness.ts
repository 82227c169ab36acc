// Shared setup of the operator scenario tests: a test API server with the MailRelay CRD
// installed from crds/ (as `kubectl apply -f crds/` would), client-node clients for the
// test's own reads and writes, and the controller started in-process with short
// timings. Everything runs against the real @kubernetes/client-node over HTTP.
import { readFileSync } from 'node:fs';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { parse } from 'yaml';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION, type Condition, type MailRelay, type MailRelaySpec } from '../../operator/api/mailrelay.ts';
import { startController, type Controller, type ControllerOptions } from '../../operator/controller/controller.ts';
import { createOperatorMetrics, type OperatorMetrics } from '../../operator/metrics.ts';
import { startApiServer, type ApiServer, type ApiServerOptions } from '../kube/apiserver.ts';
import type { KubeObject, RequestLogEntry } from '../kube/types.ts';
import { waitFor } from '../kube/testutil.ts';

/** The image the test operator uses for unset spec.image fields. */
export const TEST_IMAGE = 'ghcr.io/mailrelay/mailrelay:0.1.0-test';

/** JSON merge patch call options for client-node. */
export const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Request verbs that change state. */
export const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

/** A test API server with the MailRelay CRD, and clients for the test itself. */
export interface TestCluster {
  server: ApiServer;
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  custom: CustomObjectsApi;
  close(): Promise<void>;
}

/** The MailRelay CRD as shipped in crds/. */
export function mailRelayCrd(): KubeObject {
  return parse(readFileSync(new URL('../../crds/mailrelay.io_mailrelays.yaml', import.meta.url), 'utf8')) as KubeObject;
}

/** Starts a test API server and installs the MailRelay CRD. */
export async function startTestCluster(opts: ApiServerOptions = {}): Promise<TestCluster> {
  const server = await startApiServer(opts);
  server.create(mailRelayCrd());
  const kc = server.kubeConfig();
  return {
    server, kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    close: () => server.close(),
  };
}

/** A controller under test with its own metrics registry. */
export type TestOperator = Controller & { metrics: OperatorMetrics };

/** Starts the controller in-process with test timings (fast backoffs, no discovery cache, no resync). */
export async function startTestOperator(cluster: TestCluster, opts: Partial<ControllerOptions> = {}): Promise<TestOperator> {
  const metrics = opts.metrics ?? createOperatorMetrics(new Registry(), { defaultMetrics: false });
  const controller = await startController({
    kc: cluster.kc,
    metrics,
    defaultImage: TEST_IMAGE,
    informerBackoff: { initialMs: 50, maxMs: 400 },
    retryBackoff: { initialMs: 50, maxMs: 1000 },
    discoveryTtlMs: 0,
    resyncMs: 0,
    secretRefreshMs: 100,
    scaleDownPollMs: 100,
    events: { minIntervalMs: 0 },
    log: pino({ level: process.env.OPERATOR_TEST_LOG ?? 'silent' }),
    ...opts,
  });
  return Object.assign(controller, { metrics });
}

/** The usual scenario setup: a test cluster, namespace `ns`, and one operator watching it. */
export async function startOperatorEnv(ns: string, opts: Partial<ControllerOptions> = {}): Promise<{ cluster: TestCluster; op: TestOperator }> {
  const cluster = await startTestCluster();
  createNamespace(cluster, ns);
  const op = await startTestOperator(cluster, opts);
  return { cluster, op };
}

/** Tears down what startOperatorEnv started: the operator first, then the cluster. */
export async function stopOperatorEnv(cluster: TestCluster, op: TestOperator): Promise<void> {
  await op.stop();
  await cluster.close();
}

/** Creates a namespace (directly in the store). */
export function createNamespace(cluster: TestCluster, name: string): void {
  cluster.server.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
}

/** Creates a MailRelay through the API, as kubectl would. */
export async function createMailRelay(cluster: TestCluster, namespace: string, name: string, spec: MailRelaySpec): Promise<MailRelay> {
  return await cluster.custom.createNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace, plural: PLURAL,
    body: { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace }, spec },
  }) as MailRelay;
}

/** Reads a MailRelay. */
export async function getMailRelay(cluster: TestCluster, namespace: string, name: string): Promise<MailRelay> {
  return await cluster.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name }) as MailRelay;
}

/** Merge-patches a MailRelay's spec (null removes a field). */
export async function patchMailRelaySpec(cluster: TestCluster, namespace: string, name: string, spec: Record<string, unknown>): Promise<MailRelay> {
  return await cluster.custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { spec } }, MERGE) as MailRelay;
}

/** One condition of a MailRelay's status. */
export function conditionOf(mr: MailRelay | undefined, type: string): Condition | undefined {
  return mr?.status?.conditions?.find((c) => c.type === type);
}

/** Waits until a MailRelay's condition has the status (and reason); returns the MailRelay. */
export async function waitForCondition(cluster: TestCluster, namespace: string, name: string, type: string, status: string, reason?: string, timeoutMs = 10_000): Promise<MailRelay> {
  let last: MailRelay | undefined;
  try {
    return await waitFor(`${namespace}/${name} ${type}=${status}${reason ? ` (${reason})` : ''}`, async () => {
      last = await getMailRelay(cluster, namespace, name);
      const c = conditionOf(last, type);
      return c?.status === status && (reason === undefined || c.reason === reason) ? last : undefined;
    }, timeoutMs, 20);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last conditions: ${JSON.stringify(last?.status?.conditions)}`);
  }
}

/** Reports the StatefulSet's pods as the StatefulSet controller would (the test API server runs no controllers). */
export async function setStatefulSetStatus(cluster: TestCluster, namespace: string, name: string, ready: number): Promise<void> {
  const sts = await cluster.apps.readNamespacedStatefulSet({ name, namespace });
  const replicas = sts.spec?.replicas ?? 0;
  await cluster.apps.patchNamespacedStatefulSetStatus({
    name, namespace,
    body: { status: { observedGeneration: sts.metadata?.generation ?? 0, replicas, readyReplicas: ready, availableReplicas: ready, updatedReplicas: replicas, currentReplicas: replicas } },
  }, MERGE);
}

/** The object's pod template config-hash annotation. */
export function configHashOf(sts: { spec?: { template?: { metadata?: { annotations?: Record<string, string> } } } } | undefined): string | undefined {
  return sts?.spec?.template?.metadata?.annotations?.['mailrelay.io/config-hash'];
}

/** Writes in the request log after index `from`, optionally only those of one User-Agent prefix. */
export function writesSince(server: ApiServer, from: number, userAgentPrefix?: string): RequestLogEntry[] {
  return server.requestLog.slice(from).filter((e) => WRITE_VERBS.has(e.verb) && (userAgentPrefix === undefined || (e.userAgent ?? '').startsWith(userAgentPrefix)));
}

/** Sum of a counter or gauge's values whose labels include `labels`. */
export async function metricValue(metric: { get(): Promise<{ values: { value: number; labels: object }[] }> }, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, x]) => String((v.labels as Record<string, unknown>)[k]) === x))
    .reduce((a, v) => a + v.value, 0);
}

/** Events (core/v1) about one MailRelay. */
export async function eventsFor(cluster: TestCluster, namespace: string, name: string): Promise<{ type?: string; reason?: string; message?: string; count?: number }[]> {
  const list = await cluster.core.listNamespacedEvent({ namespace });
  return list.items.filter((e) => e.involvedObject.kind === KIND && e.involvedObject.name === name);
}

/** A MailRelay spec that validates with no Secrets: mx delivery, one replica, ClusterIP. */
export function minimalSpec(extra: MailRelaySpec = {}): MailRelaySpec {
  return { replicas: 1, relayNetworks: ['10.0.0.0/8'], ...extra };
}
