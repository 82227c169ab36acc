// A simulated kubelet for the real control plane: it registers a Node with the node's
// own credentials (system:node:<name>, so the Node authorizer and NodeRestriction judge
// every request), keeps the node's Lease and Ready condition fresh, and runs the pods
// the real scheduler binds to it. A pod runs as the image would run it: the image's
// entrypoint (node /app/bin/mailrelay.mjs) with the container's args and env, each
// volumeMount a directory populated from its volume (ConfigMap and Secret items read
// with the node's credentials, an emptyDir, a persistent directory per PVC so a spool
// outlives its pod). Only what a node provides differently is rewritten: mount paths to
// those directories and the listen addresses to the pod IP (each pod gets its own
// 127.77.x.y, so container ports stay as written). It posts pod status (Running, the
// readiness probe's verdict), and on deletion runs the preStop hook, SIGTERMs the
// process within the grace period and deletes the pod object as the kubelet does.
// Only relay pods (app.kubernetes.io/name=mailrelay, component relay) are run; others
// stay Pending.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { parse, stringify } from 'yaml';
import type { ControlPlane } from './control-plane.ts';
import { REPO } from './control-plane.ts';

/** The image's paths, mapped to this checkout (the Dockerfile copies the repository to /app). */
export const IMAGE_PATHS: [string, string][] = [['/nodejs/bin/node', process.execPath], ['/app/', `${REPO}/`]];

/** Replaces a leading mount path (longest first) in a string. */
export function remap(value: string, mounts: Map<string, string>): string {
  for (const [from, to] of [...mounts].sort((a, b) => b[0].length - a[0].length)) {
    if (value === from || value.startsWith(`${from}/`)) return to + value.slice(from.length);
  }
  return value;
}

/** remap() applied to every string of a JSON value. */
export function remapDeep(v: unknown, mounts: Map<string, string>): unknown {
  if (typeof v === 'string') return remap(v, mounts);
  if (Array.isArray(v)) return v.map((x) => remapDeep(x, mounts));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, remapDeep(x, mounts)]));
  return v;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- pod objects are wire JSON here */
type Obj = any;

interface Running {
  uid: string;
  name: string;
  namespace: string;
  podIP: string;
  child?: ChildProcess;
  out: string[];
  container: Obj;
  ready: boolean;
  startedAt: string;
  terminating?: Promise<void>;
  restarts: number;
  stopped: boolean;
}

/** Options of startKubelet. */
export interface KubeletOptions {
  /** Poll interval of the pod list (ms). */
  pollMs?: number;
  /** Pod IP prefix; pod n gets PREFIX.<n>. */
  ipPrefix?: string;
}

/** A running simulated kubelet. */
export interface Kubelet {
  nodeName: string;
  /** Pods this kubelet runs, by namespace/name. */
  pods(): { namespace: string; name: string; podIP: string; ready: boolean; output: string }[];
  /** The output of a pod's process (current and past runs). */
  output(namespace: string, name: string): string;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Registers the Node and starts running the relay pods bound to it. */
export async function startKubelet(cp: ControlPlane, opts: KubeletOptions = {}): Promise<Kubelet> {
  const token = cp.node.token;
  const nodeName = cp.node.name;
  const call = async (path: string, init: { method?: string; body?: unknown; contentType?: string } = {}) => {
    const r = await cp.request(path, { ...init, token });
    if (r.status >= 400) throw new Error(`kubelet ${init.method ?? 'GET'} ${path}: ${r.status} ${JSON.stringify(r.body).slice(0, 500)}`);
    return r.body as Obj;
  };
  const root = join(cp.dir, 'kubelet');
  mkdirSync(root, { recursive: true });
  const ipPrefix = opts.ipPrefix ?? '127.77.0';
  let nextIp = 2;
  const now = () => new Date().toISOString();

  // Register: NodeRestriction lets a node create only its own Node object.
  const nodeStatus = () => ({
    capacity: { cpu: '8', memory: '16Gi', pods: '110', 'ephemeral-storage': '100Gi' },
    allocatable: { cpu: '8', memory: '16Gi', pods: '110', 'ephemeral-storage': '100Gi' },
    addresses: [{ type: 'InternalIP', address: '127.0.0.1' }, { type: 'Hostname', address: nodeName }],
    conditions: [
      { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'simulated kubelet is posting ready status', lastHeartbeatTime: now(), lastTransitionTime: now() },
      ...['MemoryPressure', 'DiskPressure', 'PIDPressure'].map((type) => ({ type, status: 'False', reason: `KubeletHasNo${type}`, lastHeartbeatTime: now(), lastTransitionTime: now() })),
    ],
    nodeInfo: {
      kubeletVersion: 'v1.36.3', kubeProxyVersion: '', architecture: 'amd64', operatingSystem: 'linux',
      osImage: 'simulated', kernelVersion: '', containerRuntimeVersion: 'simulated://1', bootID: '', machineID: '', systemUUID: '',
    },
  });
  await call('/api/v1/nodes', {
    method: 'POST',
    body: { apiVersion: 'v1', kind: 'Node', metadata: { name: nodeName, labels: { 'kubernetes.io/hostname': nodeName, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' } } },
  });
  const postNodeStatus = () => call(`/api/v1/nodes/${nodeName}/status`, { method: 'PATCH', contentType: 'application/strategic-merge-patch+json', body: { status: nodeStatus() } });
  await postNodeStatus();
  const renewLease = async () => {
    const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${nodeName}`;
    const spec = { holderIdentity: nodeName, leaseDurationSeconds: 40, renewTime: new Date().toISOString().replace('Z', '000Z') };
    const r = await cp.request(path, { token });
    if (r.status === 404) await call('/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', { method: 'POST', body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: nodeName, namespace: 'kube-node-lease' }, spec } });
    else await call(path, { method: 'PUT', body: { ...(r.body as Obj), spec } });
  };
  await renewLease();

  const running = new Map<string, Running>();
  let stopped = false;
  const keyOf = (p: Obj) => `${p.metadata.namespace}/${p.metadata.name}`;

  const isRelay = (p: Obj) => p.metadata.labels?.['app.kubernetes.io/name'] === 'mailrelay' && p.metadata.labels?.['app.kubernetes.io/component'] === 'relay';

  async function postPodStatus(r: Running, extra: Obj = {}): Promise<void> {
    const t = now();
    const cond = (type: string, ok: boolean) => ({ type, status: ok ? 'True' : 'False', lastTransitionTime: t, lastProbeTime: null });
    const c = r.container;
    const state = r.child && r.child.exitCode === null && !r.stopped
      ? { running: { startedAt: r.startedAt } }
      : { terminated: { exitCode: r.child?.exitCode ?? 0, reason: 'Completed', startedAt: r.startedAt, finishedAt: t } };
    await call(`/api/v1/namespaces/${r.namespace}/pods/${r.name}/status`, {
      method: 'PATCH', contentType: 'application/merge-patch+json',
      body: {
        metadata: { uid: r.uid },
        status: {
          phase: 'Running', hostIP: '127.0.0.1', hostIPs: [{ ip: '127.0.0.1' }], podIP: r.podIP, podIPs: [{ ip: r.podIP }], startTime: r.startedAt,
          conditions: [cond('PodReadyToStartContainers', true), cond('Initialized', true), cond('ContainersReady', r.ready), cond('Ready', r.ready), cond('PodScheduled', true)],
          containerStatuses: [{
            name: c.name, image: c.image, imageID: `sim://${c.image}`, containerID: `sim://${r.uid}`,
            ready: r.ready, started: !!r.child, restartCount: r.restarts, state,
          }],
          ...extra,
        },
      },
    });
  }

  async function populateVolumes(pod: Obj, container: Obj, dir: string): Promise<Map<string, string>> {
    const ns = pod.metadata.namespace;
    const mounts = new Map<string, string>();
    for (const m of container.volumeMounts ?? []) {
      const volume = (pod.spec.volumes ?? []).find((v: Obj) => v.name === m.name);
      let target = join(dir, 'volumes', m.name);
      if (volume?.persistentVolumeClaim) {
        // A PVC's data outlives the pod: the same directory for every pod that mounts it.
        target = join(root, 'pvc', ns, volume.persistentVolumeClaim.claimName);
      }
      mkdirSync(target, { recursive: true });
      mounts.set(m.mountPath, target);
      const write = (path: string, data: Buffer, mode: number) => {
        mkdirSync(dirname(join(target, path)), { recursive: true });
        writeFileSync(join(target, path), data, { mode });
      };
      const sources = volume?.projected?.sources ?? (volume?.configMap ? [{ configMap: volume.configMap }] : volume?.secret ? [{ secret: { ...volume.secret, name: volume.secret.secretName } }] : []);
      const mode = volume?.projected?.defaultMode ?? volume?.configMap?.defaultMode ?? volume?.secret?.defaultMode ?? 0o644;
      for (const source of sources) {
        if (source.configMap) {
          const cm = await call(`/api/v1/namespaces/${ns}/configmaps/${source.configMap.name}`);
          const items = source.configMap.items ?? Object.keys(cm.data ?? {}).map((key) => ({ key, path: key }));
          for (const item of items) write(item.path, Buffer.from(cm.data?.[item.key] ?? '', 'utf8'), item.mode ?? mode);
        }
        if (source.secret) {
          const secret = await call(`/api/v1/namespaces/${ns}/secrets/${source.secret.name}`);
          const items = source.secret.items ?? Object.keys(secret.data ?? {}).map((key) => ({ key, path: key }));
          for (const item of items) write(item.path, Buffer.from(secret.data?.[item.key] ?? '', 'base64'), item.mode ?? mode);
        }
      }
    }
    return mounts;
  }

  function envOf(pod: Obj, container: Obj, podIP: string): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    for (const e of container.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.fieldRef) {
        const f = e.valueFrom.fieldRef.fieldPath as string;
        env[e.name] = f === 'metadata.name' ? pod.metadata.name : f === 'metadata.namespace' ? pod.metadata.namespace : f === 'status.podIP' ? podIP : f === 'spec.nodeName' ? nodeName : '';
      } else env[e.name] = '';
    }
    return env;
  }

  async function startPod(pod: Obj): Promise<void> {
    const key = keyOf(pod);
    const container = pod.spec.containers[0];
    const podIP = `${ipPrefix}.${nextIp++}`;
    const r: Running = { uid: pod.metadata.uid, name: pod.metadata.name, namespace: pod.metadata.namespace, podIP, out: [], container, ready: false, startedAt: now(), restarts: 0, stopped: false };
    running.set(key, r);
    const dir = join(root, 'pods', pod.metadata.uid);
    const mounts = await populateVolumes(pod, container, dir);
    const tmp = mounts.get('/tmp') ?? join(dir, 'tmp');
    mkdirSync(tmp, { recursive: true });
    const args: string[] = (container.args ?? []).map((a: string) => remap(a, mounts));
    const configFile = args[args.indexOf('--config') + 1];
    if (args.includes('--config') && configFile && existsSync(configFile)) {
      // The relay listens on the pod IP; everything else in its config is as the ConfigMap says.
      const { readFileSync } = await import('node:fs');
      const config = remapDeep(parse(readFileSync(configFile, 'utf8')), mounts) as Obj;
      config.inbound.host = podIP;
      config.http.host = podIP;
      writeFileSync(configFile, stringify(config));
    }
    const env = { ...envOf(pod, container, podIP), HOME: tmp, TMPDIR: tmp };
    const [node, app] = IMAGE_PATHS.map(([, to]) => to) as [string, string];
    const launch = () => {
      const child = spawn(node, [join(app, 'bin', 'mailrelay.mjs'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.on('data', (b: Buffer) => r.out.push(b.toString()));
      child.stderr?.on('data', (b: Buffer) => r.out.push(b.toString()));
      r.child = child;
      r.startedAt = now();
      child.once('exit', () => {
        if (r.stopped || stopped) return;
        // restartPolicy Always: start it again after a short back-off.
        r.restarts++;
        r.ready = false;
        void postPodStatus(r).catch(() => undefined);
        setTimeout(() => { if (!r.stopped && !stopped) launch(); }, 1000);
      });
    };
    launch();
    await postPodStatus(r);
  }

  async function probe(r: Running): Promise<void> {
    const p = r.container.readinessProbe?.httpGet;
    let ok = false;
    if (!p) ok = !!r.child && r.child.exitCode === null;
    else {
      const port = typeof p.port === 'number' ? p.port : (r.container.ports ?? []).find((x: Obj) => x.name === p.port)?.containerPort;
      try {
        const res = await fetch(`http://${r.podIP}:${port}${p.path ?? '/'}`, { signal: AbortSignal.timeout(2000) });
        ok = res.status >= 200 && res.status < 400;
      } catch { ok = false; }
    }
    if (ok !== r.ready && !r.stopped) {
      r.ready = ok;
      await postPodStatus(r);
    }
  }

  async function terminate(r: Running, pod: Obj | undefined): Promise<void> {
    const grace = pod?.metadata.deletionGracePeriodSeconds ?? pod?.spec?.terminationGracePeriodSeconds ?? 30;
    const deadline = Date.now() + grace * 1000;
    const preStop = r.container.lifecycle?.preStop?.exec?.command as string[] | undefined;
    if (pod && preStop && r.child && r.child.exitCode === null) {
      const cmd = preStop.map((a) => {
        for (const [from, to] of IMAGE_PATHS) if (a.startsWith(from)) return to + a.slice(from.length);
        return a.replaceAll('127.0.0.1', r.podIP).replaceAll('localhost', r.podIP);
      });
      const hook = spawn(cmd[0] ?? 'true', cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
      hook.stdout?.on('data', (b: Buffer) => r.out.push(`[preStop] ${b.toString()}`));
      hook.stderr?.on('data', (b: Buffer) => r.out.push(`[preStop] ${b.toString()}`));
      const t = setTimeout(() => hook.kill('SIGKILL'), Math.max(0, deadline - Date.now()));
      await new Promise((res) => hook.once('exit', res));
      clearTimeout(t);
    }
    r.stopped = true;
    if (r.child && r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill('SIGTERM');
      const t = setTimeout(() => r.child?.kill('SIGKILL'), Math.max(1000, deadline - Date.now()));
      await new Promise((res) => r.child?.once('exit', res));
      clearTimeout(t);
    }
    r.ready = false;
    if (pod) {
      await postPodStatus(r).catch(() => undefined);
      // The kubelet removes the pod object once its containers are gone.
      const res = await cp.request(`/api/v1/namespaces/${r.namespace}/pods/${r.name}?gracePeriodSeconds=0`, {
        method: 'DELETE', token, // gracePeriodSeconds as a query parameter: the real server ignored it in this DELETE body.
        body: { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: r.uid } },
      });
      if (res.status >= 400 && res.status !== 404) process.stderr.write(`simulated kubelet: deleting pod ${r.namespace}/${r.name}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}\n`);
    }
  }

  const tick = async () => {
    const list = await call(`/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${nodeName}`)}`);
    const seen = new Set<string>();
    for (const pod of list.items as Obj[]) {
      const key = keyOf(pod);
      seen.add(key);
      if (!isRelay(pod)) continue;
      let r = running.get(key);
      if (r && r.uid !== pod.metadata.uid) {
        // Same name, new pod (a StatefulSet re-created it): the old one is gone.
        if (!r.terminating) r.terminating = terminate(r, undefined);
        await r.terminating;
        running.delete(key);
        r = undefined;
      }
      if (!r) {
        if (pod.metadata.deletionTimestamp) continue;
        await startPod(pod);
        continue;
      }
      if (pod.metadata.deletionTimestamp) {
        if (!r.terminating) {
          r.terminating = terminate(r, pod)
            .catch((err: unknown) => { process.stderr.write(`simulated kubelet: terminating ${key}: ${(err as Error).message}\n`); })
            .finally(() => running.delete(key));
        }
        continue;
      }
      if (!r.stopped) await probe(r);
    }
    for (const [key, r] of running) {
      if (!seen.has(key) && !r.terminating) {
        r.terminating = terminate(r, undefined).finally(() => running.delete(key));
      }
    }
  };

  const pollMs = opts.pollMs ?? 300;
  let lastHeartbeat = Date.now();
  const loop = (async () => {
    while (!stopped) {
      try {
        await tick();
        if (Date.now() - lastHeartbeat > 10_000) {
          lastHeartbeat = Date.now();
          await renewLease();
          await postNodeStatus();
        }
      } catch (err) {
        if (!stopped) process.stderr.write(`simulated kubelet: ${(err as Error).message}\n`);
      }
      await sleep(pollMs);
    }
  })();

  return {
    nodeName,
    // output is a getter: joining a busy relay's log on every call made a caller polling
    // the Ready pods (the burst sender) quadratic in the log.
    pods: () => [...running.values()].map((r) => ({ namespace: r.namespace, name: r.name, podIP: r.podIP, ready: r.ready, get output() { return r.out.join(''); } })),
    output: (namespace, name) => running.get(`${namespace}/${name}`)?.out.join('') ?? '',
    async stop() {
      stopped = true;
      await loop;
      await Promise.all([...running.values()].map(async (r) => {
        r.stopped = true;
        if (r.child && r.child.exitCode === null) {
          r.child.kill('SIGKILL');
          await new Promise((res) => r.child?.once('exit', res));
        }
      }));
      rmSync(join(root, 'pods'), { recursive: true, force: true });
    },
  };
}
