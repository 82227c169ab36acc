// Shared setup of the cluster scenarios (test/cluster/*.test.ts): a real control plane
// (control-plane.ts), the MailRelay CRD applied from crds/ with kubectl, the operator
// chart installed with helm, storage for the spools (a default StorageClass and local
// PersistentVolumes on the one Node, bound by the real PV controller), the simulated
// kubelet, and the real `mailrelay operator` process authenticated with a token of the
// chart's ServiceAccount, so the chart's RBAC is what every request is judged by.
//
// Each test file starts its own control plane (about 10-20 s; see test/cluster/README.md):
// node --test runs files in separate processes, and some scenarios change cluster-scoped
// objects (the CRD, the chart's ClusterRole) that others rely on.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startControlPlane, REPO, type AuditEvent, type ControlPlane } from './control-plane.ts';
import { startKubelet, IMAGE_PATHS, type Kubelet } from './kubelet.ts';

/** Namespace and release name of the operator chart in the scenarios. */
export const RELEASE = { name: 'mailrelay', namespace: 'mailrelay-system' } as const;
/** The chart's ServiceAccount (the release name contains the chart name's first word, so fullname is release-chart). */
export const OPERATOR_SA = 'mailrelay-mailrelay-operator';
/** The chart directory. */
export const CHART = join(REPO, 'charts', 'mailrelay-operator');
/** The image the operator puts on relay pods (the simulated kubelet runs this checkout for any image). */
export const RELAY_IMAGE = 'ghcr.io/mailrelay/mailrelay:cluster-test';

/** A started environment. */
export interface ClusterEnv {
  cp: ControlPlane;
  kubelet?: Kubelet;
  /** kubectl as admin; throws on a non-zero exit. */
  kubectl(args: string[], input?: string): string;
  /** Parsed JSON of `kubectl get -o json`. */
  getJson<T = any>(args: string[]): T; // eslint-disable-line @typescript-eslint/no-explicit-any
  close(): Promise<void>;
}

/** Options of startCluster. */
export interface ClusterEnvOptions {
  /** Apply crds/ (default true). */
  crds?: boolean;
  /** helm install the chart with replicaCount 0 (the tests run the operator themselves); default true. */
  chart?: boolean | { values?: Record<string, string> };
  /** Register a Node and run relay pods (default false). */
  kubelet?: boolean;
  /** Local PersistentVolumes to create for spools (default 6 when kubelet is on). */
  volumes?: number;
}

/** Starts a control plane and what the scenarios need on it. */
export async function startCluster(opts: ClusterEnvOptions = {}): Promise<ClusterEnv> {
  const cp = await startControlPlane();
  const kubectl = (args: string[], input?: string) => cp.kubectl(args, input === undefined ? {} : { input });
  let kubelet: Kubelet | undefined;
  try {
    if (opts.crds ?? true) {
      kubectl(['apply', '--server-side', '-f', join(REPO, 'crds')]);
      kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/mailrelays.mailrelay.io']);
    }
    if (opts.chart ?? true) {
      const values = typeof opts.chart === 'object' ? opts.chart.values ?? {} : {};
      const set = Object.entries({ replicaCount: '0', ...values }).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
      const r = cp.helm(['install', RELEASE.name, CHART, '--namespace', RELEASE.namespace, '--create-namespace', '--skip-crds', ...set]);
      if (r.code !== 0) throw new Error(`helm install: ${r.stderr}`);
    }
    if (opts.kubelet) {
      kubectl(['apply', '-f', '-'], storageManifests(cp, opts.volumes ?? 6));
      kubelet = await startKubelet(cp);
    }
  } catch (err) {
    await kubelet?.stop();
    await cp.close();
    throw err;
  }
  return {
    cp, kubelet, kubectl,
    getJson: (args) => JSON.parse(kubectl(['get', '-o', 'json', ...args])),
    async close() {
      await kubelet?.stop();
      await cp.close();
    },
  };
}

/** A default StorageClass bound on first use, and local PVs on the Node for the spools. */
function storageManifests(cp: ControlPlane, n: number): string {
  const docs = [`apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain`];
  for (let i = 0; i < n; i++) {
    docs.push(`apiVersion: v1
kind: PersistentVolume
metadata: {name: local-${i}}
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  local: {path: ${join(cp.dir, 'pv', String(i))}}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [${cp.node.name}]}]`);
  }
  return docs.join('\n---\n');
}

/** A running operator process. */
export interface OperatorProc {
  child: ChildProcess;
  /** Everything it printed. */
  output(): string;
  /** The User-Agent prefix of its requests (mailrelay-operator/<identity>). */
  identity: string;
  /** Sends SIGTERM and waits for the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `mailrelay operator` the way the chart's Deployment does (its container args and
 * env, read from the installed Deployment), authenticated with a TokenRequest token of the
 * chart's ServiceAccount. `extraArgs` are appended (short test timings).
 */
export function startOperator(env: ClusterEnv, podName: string, extraArgs: string[] = []): OperatorProc {
  const { cp } = env;
  const deploy = env.getJson(['deployment', '-n', RELEASE.namespace, '-l', 'app.kubernetes.io/component=operator']).items[0];
  const container = deploy.spec.template.spec.containers[0];
  const token = cp.serviceAccountToken(RELEASE.namespace, deploy.spec.template.spec.serviceAccountName);
  const kubeconfig = cp.kubeconfigFor(token, `operator-${podName}`);
  const vars: NodeJS.ProcessEnv = { PATH: process.env.PATH, KUBECONFIG: kubeconfig, HOME: cp.dir };
  for (const e of container.env ?? []) {
    if (e.value !== undefined) vars[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') vars[e.name] = RELEASE.namespace;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') vars[e.name] = podName;
  }
  vars.RELAY_IMAGE = RELAY_IMAGE;
  // The chart's --metrics-addr binds every interface on a fixed port; a test binds loopback, any port.
  const args = (container.args as string[]).filter((a) => !a.startsWith('--metrics-addr') && !a.startsWith('--metrics-port'));
  const [node, app] = IMAGE_PATHS.map(([, to]) => to) as [string, string];
  const child = spawn(node, [join(app, 'bin', 'mailrelay.mjs'), ...args, '--metrics-addr', '127.0.0.1:0', ...extraArgs], { env: vars, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr?.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  writeFileSync(join(cp.dir, `operator-${podName}.pid`), String(child.pid));
  return {
    child, output: () => out, identity: `mailrelay-operator/${podName}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** The ServiceAccount's username as the API server sees it. */
export const OPERATOR_USER = `system:serviceaccount:${RELEASE.namespace}:${OPERATOR_SA}`;

/** Audit events of the operator's ServiceAccount. */
export function operatorRequests(cp: ControlPlane): AuditEvent[] {
  return cp.audit().filter((e) => e.user.username === OPERATOR_USER);
}

/** Bounded polling. */
export async function eventually<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) { last = err; }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
