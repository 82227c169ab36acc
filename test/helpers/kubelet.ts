// A simulated kubelet: starts one container of a pod spec the operator rendered, the way a
// node would, so tests prove that what the operator writes is what the relay runs. Each
// volumeMount becomes a host directory filled from its volume (the projected ConfigMap and
// Secret items with their mode, an emptyDir, the spool claim), owned by the pod's fsGroup
// when the container runs as the pod's user; hooks and probes run the container's own commands.
//
// Two runtimes:
//   image     the container runs from the image's root filesystem (image.ts): its
//             entrypoint, the pod's user and group, read-only root, the volumes at their
//             mount paths, as runc would. The pod spec and the image are checked together.
//   checkout  the container's command runs from this checkout with this node: the image's
//             paths (/nodejs/bin/node, /app/) map to process.execPath and the repository,
//             and mount paths to the host directories. No root needed.
//
// What a node provides differently in both: the pod shares the host's network (tests use
// loopback only), so each container port gets a free host port, and the caller points the
// relay at them (rewriteRelayConfig).
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { V1Container, V1PodSpec } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import { freePort } from '../peers/postfix.ts';
import { REPO, homeOf, imageEnv, startContainer, type ContainerMount, type MountedImage } from './image.ts';

/** Where the pod's containers come from. */
export type PodRuntime = { kind: 'checkout' } | { kind: 'image'; image: MountedImage };

/** What the kubelet reads volumes from (the API server, or the builders' output). */
export interface VolumeData {
  /** A ConfigMap's data, undefined when there is none. */
  configMap(name: string): Promise<Record<string, string> | undefined>;
  /** A Secret's decoded data, undefined when there is none. */
  secret(name: string): Promise<Record<string, Buffer> | undefined>;
}

/** A process the kubelet started, with its output so far and its exit. */
export interface PodProcess {
  child: ChildProcess;
  out: string[];
  exited: Promise<number | null>;
}

/** A pod whose volumes are in place, ready to start its container. */
export interface PreparedPod {
  container: V1Container;
  podSpec: V1PodSpec;
  runtime: PodRuntime;
  /** Container mount path -> host directory. */
  mounts: Map<string, string>;
  /** containerPort -> host port. */
  ports: Map<number, number>;
  /** The host port of a named container port. */
  port(name: string): number;
  /** The host file a container path is in (for the test to read or rewrite). */
  hostPath(containerPath: string): string;
  /** The path the container's process uses for a container path (the host path in a checkout). */
  processPath(containerPath: string): string;
  /** uid and gid the container runs as. */
  user: { uid: number; gid: number };
  /** Starts the container (entrypoint + args). */
  start(): PodProcess;
  /** Runs a command in the container, as an exec hook or probe does. */
  exec(command: string[]): PodProcess;
  /** Deletes the pod's volumes (its processes must have exited). */
  remove(): void;
}

/** The image's paths, mapped to this checkout (the Dockerfile puts the CLI under /app). */
const CHECKOUT_PATHS: [string, string][] = [['/nodejs/bin/node', process.execPath], ['/app/', `${REPO}/`]];

function collect(child: ChildProcess): PodProcess {
  const out: string[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b.toString()));
  child.stderr?.on('data', (b: Buffer) => out.push(b.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out, exited };
}

/** Replaces the longest matching leading path. */
function remapPath(value: string, table: [string, string][]): string {
  for (const [from, to] of [...table].sort((a, b) => b[0].length - a[0].length)) {
    if (value === from || value.startsWith(from.endsWith('/') ? from : `${from}/`)) return to + value.slice(from.length);
  }
  return value;
}

/** Gives a volume's files the pod's fsGroup, as the kubelet does: group-owned, group-writable dirs with setgid. */
function applyFsGroup(dir: string, gid: number, writable: boolean): void {
  chownSync(dir, 0, gid);
  chmodSync(dir, writable ? 0o2775 : 0o755);
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) applyFsGroup(p, gid, writable);
    else chownSync(p, 0, gid);
  }
}

/**
 * Prepares one container of a pod (`container` names it; default the first): fills a host
 * directory per volumeMount and picks a host port per container port. `claims` names the
 * StatefulSet's volumeClaimTemplates (each an empty directory, like a fresh PVC).
 */
export async function preparePod(opts: {
  podSpec: V1PodSpec;
  claims?: string[];
  container?: string;
  data: VolumeData;
  runtime: PodRuntime;
  podName?: string;
  /** The pod's namespace (for env fieldRefs). */
  namespace?: string;
  /** What the node mounts besides the pod's volumes (e.g. a service account's credentials): host dir -> container path, read-only. */
  nodeMounts?: { hostPath: string; containerPath: string }[];
  /** What the node adds to the container's environment (e.g. KUBERNETES_SERVICE_HOST/PORT); the pod's own env wins. */
  nodeEnv?: Record<string, string>;
}): Promise<PreparedPod> {
  const { podSpec, runtime, data } = opts;
  const container = (opts.container ? podSpec.containers.find((c) => c.name === opts.container) : podSpec.containers[0])
    ?? fail(`no container ${opts.container ?? ''}`);
  const root = mkdtempSync(join(tmpdir(), 'kubelet-'));
  const fsGroup = podSpec.securityContext?.fsGroup;
  const mounts = new Map<string, string>();
  const readOnly = new Set<string>();
  for (const m of container.volumeMounts ?? []) {
    const dir = join(root, m.name);
    mkdirSync(dir, { recursive: true });
    mounts.set(m.mountPath, dir);
    if (m.readOnly) readOnly.add(m.mountPath);
    const volume = podSpec.volumes?.find((v) => v.name === m.name);
    if (volume?.projected) {
      const mode = volume.projected.defaultMode ?? 0o644;
      const write = (path: string, bytes: Buffer) => {
        mkdirSync(dirname(join(dir, path)), { recursive: true });
        writeFileSync(join(dir, path), bytes, { mode });
        chmodSync(join(dir, path), mode);
      };
      for (const source of volume.projected.sources ?? []) {
        if (source.configMap) {
          const cm = await data.configMap(source.configMap.name ?? '');
          if (!cm && !source.configMap.optional) throw new Error(`configMap ${source.configMap.name} not found (volume ${m.name})`);
          for (const item of source.configMap.items ?? []) write(item.path, Buffer.from(cm?.[item.key] ?? '', 'utf8'));
        }
        if (source.secret) {
          const secret = await data.secret(source.secret.name ?? '');
          if (!secret && !source.secret.optional) throw new Error(`secret ${source.secret.name} not found (volume ${m.name})`);
          if (secret) for (const item of source.secret.items ?? []) write(item.path, secret[item.key] ?? Buffer.alloc(0));
        }
      }
      if (fsGroup !== undefined && runtime.kind === 'image') applyFsGroup(dir, fsGroup, false);
    } else {
      // An emptyDir, or a volumeClaimTemplate (the spool): an empty directory.
      if (!volume?.emptyDir && !opts.claims?.includes(m.name)) throw new Error(`volume ${m.name}: neither projected, emptyDir nor a claim`);
      if (fsGroup !== undefined && runtime.kind === 'image') applyFsGroup(dir, fsGroup, true);
    }
  }
  const ports = new Map<number, number>();
  for (const p of container.ports ?? []) ports.set(p.containerPort, await freePort());

  const sc = container.securityContext, psc = podSpec.securityContext;
  const [imageUid, imageGid] = runtime.kind === 'image' ? (runtime.image.config.User ?? '0').split(':').map(Number) : [undefined, undefined];
  const user = {
    uid: sc?.runAsUser ?? psc?.runAsUser ?? imageUid ?? 0,
    gid: sc?.runAsGroup ?? psc?.runAsGroup ?? imageGid ?? imageUid ?? 0,
  };
  const hostPath = (p: string) => remapPath(p, [...mounts]);
  // One pass over the image's paths and the mounts together: mapping /app/ to the checkout
  // first and then the mounts would send a checkout under /tmp into the pod's /tmp volume.
  const processPath = (p: string) => (runtime.kind === 'checkout' ? remapPath(p, [...CHECKOUT_PATHS, ...mounts]) : p);

  // What the kubelet mounts into every container besides its volumes.
  const podName = opts.podName ?? 'pod-0';
  const etc = join(root, '.etc');
  mkdirSync(etc);
  writeFileSync(join(etc, 'hosts'), `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t${podName}\n`);
  writeFileSync(join(etc, 'hostname'), `${podName}\n`);
  writeFileSync(join(etc, 'resolv.conf'), readFileSync('/etc/resolv.conf'));
  writeFileSync(join(etc, 'termination-log'), '');
  chmodSync(join(etc, 'termination-log'), 0o666);

  const processEnv = (): Record<string, string> => {
    const env: Record<string, string> = {};
    if (runtime.kind === 'image') {
      Object.assign(env, imageEnv(runtime.image.config));
      env.HOSTNAME = podName;
      env.HOME = homeOf(runtime.image.rootfs, user.uid);
    } else {
      env.PATH = process.env.PATH ?? '/usr/bin:/bin';
      env.HOME = env.TMPDIR = mounts.get('/tmp') ?? root;
    }
    Object.assign(env, opts.nodeEnv);
    const fields: Record<string, string> = { 'metadata.name': podName, 'metadata.namespace': opts.namespace ?? 'default' };
    for (const e of container.env ?? []) {
      const fieldPath = e.valueFrom?.fieldRef?.fieldPath;
      if (e.valueFrom && !(fieldPath && fieldPath in fields)) throw new Error(`env ${e.name}: only value and fieldRef ${Object.keys(fields).join('/')} are simulated`);
      env[e.name] = fieldPath ? fields[fieldPath]! : e.value ?? '';
    }
    return env;
  };

  const launch = (argv: string[]): PodProcess => {
    if (runtime.kind === 'checkout') {
      if (opts.nodeMounts?.length) throw new Error('nodeMounts need the image runtime');
      const [cmd = '', ...args] = argv.map(processPath);
      return collect(spawn(cmd, args, { env: processEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
    }
    const volumeMounts: ContainerMount[] = [...mounts].map(([containerPath, dir]) => ({ hostPath: dir, containerPath, readOnly: readOnly.has(containerPath) }));
    for (const f of ['hosts', 'hostname', 'resolv.conf']) volumeMounts.push({ hostPath: join(etc, f), containerPath: `/etc/${f}`, file: true });
    for (const m of opts.nodeMounts ?? []) volumeMounts.push({ ...m, readOnly: true });
    volumeMounts.push({ hostPath: join(etc, 'termination-log'), containerPath: container.terminationMessagePath ?? '/dev/termination-log', file: true });
    return collect(startContainer({
      rootfs: runtime.image.rootfs,
      argv,
      uid: user.uid,
      gid: user.gid,
      readOnlyRootFilesystem: sc?.readOnlyRootFilesystem === true,
      mounts: volumeMounts,
      env: processEnv(),
      workingDir: container.workingDir ?? runtime.image.config.WorkingDir ?? '/',
    }));
  };

  return {
    container,
    podSpec,
    runtime,
    mounts,
    ports,
    user,
    port: (name) => ports.get(container.ports?.find((p) => p.name === name)?.containerPort ?? -1) ?? fail(`no container port ${name}`),
    hostPath,
    processPath,
    start: () => {
      // Kubernetes: command replaces the image's ENTRYPOINT, args its CMD.
      const entrypoint = container.command ?? (runtime.kind === 'image' ? runtime.image.config.Entrypoint : ['/nodejs/bin/node', '/app/bin/mailrelay.mjs']) ?? [];
      const args = container.args ?? (container.command || runtime.kind === 'checkout' ? [] : runtime.image.config.Cmd ?? []);
      return launch([...entrypoint, ...args]);
    },
    exec: (command) => launch(command),
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

/**
 * Points the relay config in the pod's config volume at the pod's host ports (listening on
 * 127.0.0.1, the pod IP here), and in a checkout at the host directories of its mounts.
 * Everything else stays as the operator rendered it.
 */
export function rewriteRelayConfig(pod: PreparedPod): string {
  const args = pod.container.args ?? [];
  const configFile = args[args.indexOf('--config') + 1] ?? fail('no --config in the container args');
  const file = pod.hostPath(configFile);
  const mapDeep = (v: unknown): unknown => {
    if (typeof v === 'string') return pod.processPath(v);
    if (Array.isArray(v)) return v.map(mapDeep);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mapDeep(x)]));
    return v;
  };
  const config = mapDeep(parse(readFileSync(file, 'utf8'))) as { inbound: { port: number; host?: string }; http: { port: number; host?: string } };
  config.inbound.port = pod.ports.get(config.inbound.port) ?? fail(`inbound.port ${config.inbound.port} is not a container port`);
  config.http.port = pod.ports.get(config.http.port) ?? fail(`http.port ${config.http.port} is not a container port`);
  config.inbound.host = '127.0.0.1';
  config.http.host = '127.0.0.1';
  const mode = statSync(file).mode;
  writeFileSync(file, stringify(config));
  chmodSync(file, mode & 0o7777);
  return file;
}

/** A command with loopback URLs of container ports pointed at their host ports (a preStop hook's). */
export function withHostPorts(pod: PreparedPod, command: string[]): string[] {
  return command.map((a) => a.replace(/^(https?:\/\/(?:127\.0\.0\.1|localhost)):(\d+)/, (m, base: string, port: string) => {
    const host = pod.ports.get(Number(port));
    return host ? `${base}:${host}` : m;
  }));
}

function fail(message: string): never {
  throw new Error(message);
}
