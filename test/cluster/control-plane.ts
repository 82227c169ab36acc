// A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager
// and kube-scheduler, built at pinned releases by scripts/build-control-plane.sh, run on
// loopback the way a production cluster runs them:
//   - TLS everywhere the apiserver serves, with a CA and keys made by openssl;
//   - --authorization-mode=Node,RBAC; the default admission plugins plus
//     OwnerReferencesPermissionEnforcement, PodSecurity and NodeRestriction;
//   - an audit log (JSON lines, Metadata level) that tests read to count requests;
//   - static bearer tokens for an admin (system:masters), the controller-manager and the
//     scheduler (their bootstrap RBAC users), and one Node (system:node:<name>);
//     ServiceAccount tokens come from the TokenRequest API (serviceAccountToken()).
// The controller-manager runs every default controller (StatefulSet, garbage collector,
// PV binder, node lifecycle, ...) with per-controller ServiceAccount credentials.
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { freePort } from '../peers/postfix.ts';

/** Repository root. */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Builds (or finds in the cache) the control-plane binaries; returns their directory. */
export function controlPlaneBin(): string {
  if (process.env.MAILRELAY_CLUSTER_BIN && existsSync(join(process.env.MAILRELAY_CLUSTER_BIN, 'kube-apiserver'))) return process.env.MAILRELAY_CLUSTER_BIN;
  const out = execFileSync('bash', [join(REPO, 'scripts', 'build-control-plane.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const bin = out.trim().split('\n').at(-1) ?? '';
  process.env.MAILRELAY_CLUSTER_BIN = bin;
  return bin;
}

/** One audit event (audit.k8s.io/v1 Event, the fields tests look at). */
export interface AuditEvent {
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string; groups?: string[] };
  userAgent?: string;
  objectRef?: { resource?: string; namespace?: string; name?: string; apiGroup?: string; subresource?: string };
  responseStatus?: { code?: number; message?: string; reason?: string };
  annotations?: Record<string, string>;
}

/** A running control plane. */
export interface ControlPlane {
  /** https://127.0.0.1:PORT */
  server: string;
  /** Where certificates, tokens, logs and etcd's data live. */
  dir: string;
  bin: string;
  caFile: string;
  /** PEM of the cluster CA. */
  ca: string;
  adminToken: string;
  /** The Node's name and its bearer token (system:node:<name>). */
  node: { name: string; token: string };
  /** Writes a kubeconfig for a bearer token; returns its path. */
  kubeconfigFor(token: string, name: string, namespace?: string): string;
  /** KubeConfig object for a bearer token. */
  kubeConfig(token: string, namespace?: string): KubeConfig;
  /** The admin kubeconfig file. */
  adminKubeconfig: string;
  /** Audit events so far (the whole log, parsed; ResponseComplete stage only). */
  audit(): AuditEvent[];
  /** kubectl from the same release, as admin unless KUBECONFIG is given in env. */
  kubectl(args: string[], opts?: { input?: string; env?: NodeJS.ProcessEnv }): string;
  /** kubectl, resolving with {code, stdout, stderr} instead of throwing. */
  kubectlResult(args: string[], opts?: { input?: string; env?: NodeJS.ProcessEnv }): { code: number; stdout: string; stderr: string };
  /** helm at the pinned release, as admin. */
  helm(args: string[], opts?: { env?: NodeJS.ProcessEnv }): { code: number; stdout: string; stderr: string };
  /** A token for a ServiceAccount (TokenRequest), valid for an hour. */
  serviceAccountToken(namespace: string, name: string): string;
  /** fetch() against the apiserver with a bearer token (TLS verified against the cluster CA). */
  request(path: string, init?: { method?: string; body?: unknown; token?: string; contentType?: string }): Promise<{ status: number; body: unknown }>;
  /** Stops every process and removes the directory (unless KEEP_CLUSTER_DIR is set). */
  close(): Promise<void>;
}

interface Proc { child: ChildProcess; log: string; name: string }

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** CA, apiserver serving cert (127.0.0.1, localhost, the in-cluster names) and the ServiceAccount signing key. */
function makeCertificates(dir: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=mailrelay-test-ca']);
  writeFileSync(join(dir, 'apiserver.ext'), [
    'basicConstraints=CA:FALSE', 'keyUsage=digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1',
  ].join('\n'));
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'apiserver.key', '-out', 'apiserver.csr', '-subj', '/CN=kube-apiserver']);
  openssl(dir, ['x509', '-req', '-in', 'apiserver.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'apiserver.crt', '-days', '2', '-extfile', 'apiserver.ext']);
  openssl(dir, ['genrsa', '-out', 'sa.key', '2048']);
  openssl(dir, ['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
}

/**
 * The audit policy: every request of the operator-relevant resources at Metadata level
 * (who, verb, URI, response code), nothing for the noisy internals (Leases of nodes and
 * components, Endpoint slices, the controllers' own reads), so the log stays small.
 */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [system:kube-scheduler, system:kube-controller-manager, system:apiserver]
  verbs: [get, list, watch]
- level: None
  resources:
  - group: coordination.k8s.io
    resources: [leases]
  namespaces: [kube-node-lease, kube-system]
- level: None
  nonResourceURLs: ['/healthz*', '/readyz*', '/livez*', '/version', '/openapi*']
- level: Metadata
`;

/** Options of startControlPlane. */
export interface ControlPlaneOptions {
  /** Name of the one Node whose token is minted (the simulated kubelet registers it). */
  nodeName?: string;
  /** Extra kube-apiserver flags. */
  apiserverFlags?: string[];
}

/** Every control-plane process this test process started: killed when it exits, however it exits. */
const started = new Set<ChildProcess>();
process.once('exit', () => { for (const c of started) if (c.exitCode === null) c.kill('SIGKILL'); });

function startProc(name: string, cmd: string, args: string[], dir: string): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir } });
  started.add(child);
  child.once('exit', () => started.delete(child));
  const p: Proc = { child, log: '', name };
  const keep = (b: Buffer) => { p.log = (p.log + b.toString()).slice(-200_000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return p;
}

async function waitUntil<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, procs: Proc[]): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    for (const p of procs) {
      if (p.child.exitCode !== null) throw new Error(`${p.name} exited (${p.child.exitCode}) while waiting for ${what}:\n${p.log.slice(-4000)}`);
    }
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) { lastErr = err; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${(lastErr as Error)?.message ?? ''}\n${procs.map((p) => `--- ${p.name}\n${p.log.slice(-3000)}`).join('\n')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler on loopback. */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const bin = controlPlaneBin();
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-cluster-'));
  makeCertificates(dir);
  const tok = () => randomBytes(24).toString('hex');
  const adminToken = tok();
  const kcmToken = tok();
  const schedToken = tok();
  const nodeName = opts.nodeName ?? 'node-1';
  const nodeToken = tok();
  writeFileSync(join(dir, 'tokens.csv'), [
    `${adminToken},admin,admin-uid,"system:masters"`,
    `${kcmToken},system:kube-controller-manager,kcm-uid`,
    `${schedToken},system:kube-scheduler,sched-uid`,
    `${nodeToken},system:node:${nodeName},node-uid,"system:nodes"`,
  ].join('\n') + '\n');
  writeFileSync(join(dir, 'audit-policy.yaml'), AUDIT_POLICY);
  const auditLog = join(dir, 'audit.log');

  const [etcdPort, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  const server = `https://127.0.0.1:${apiPort}`;
  const procs: Proc[] = [];
  const stopAll = async () => {
    for (const p of [...procs].reverse()) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill('SIGTERM');
        const t = setTimeout(() => p.child.kill('SIGKILL'), 5000);
        await new Promise((r) => p.child.once('exit', r));
        clearTimeout(t);
      }
    }
  };
  try {
    procs.push(startProc('etcd', join(bin, 'etcd'), [
      '--name=default', `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`, `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      // Test data: losing it on a power cut is fine, and fsync on a shared disk is slow.
      '--unsafe-no-fsync', '--log-level=warn',
    ], dir));
    procs.push(startProc('kube-apiserver', join(bin, 'kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${apiPort}`,
      `--tls-cert-file=${join(dir, 'apiserver.crt')}`, `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
      `--client-ca-file=${join(dir, 'ca.crt')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement,PodSecurity',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(dir, 'sa.pub')}`, `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      `--audit-policy-file=${join(dir, 'audit-policy.yaml')}`, `--audit-log-path=${auditLog}`, '--audit-log-format=json',
      '--audit-log-mode=blocking', '--audit-log-maxsize=0',
      '--profiling=false', '--v=1',
      ...(opts.apiserverFlags ?? []),
    ], dir));
    const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const request: ControlPlane['request'] = (path, init = {}) => new Promise((resolvePromise, reject) => {
      const body = init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
      const req = httpsRequest(`${server}${path}`, {
        method: init.method ?? 'GET', ca,
        headers: {
          authorization: `Bearer ${init.token ?? adminToken}`, accept: 'application/json',
          ...(body !== undefined ? { 'content-type': init.contentType ?? 'application/json' } : {}),
        },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try { parsed = JSON.parse(text); } catch { /* keep text */ }
          resolvePromise({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
    await waitUntil('kube-apiserver /readyz', async () => (await request('/readyz')).status === 200, 90_000, procs);

    const kubeconfigFor = (token: string, name: string, namespace?: string) => {
      const path = join(dir, `kubeconfig-${name}`);
      writeFileSync(path, [
        'apiVersion: v1', 'kind: Config',
        'clusters:', '- name: test', '  cluster:', `    server: ${server}`, `    certificate-authority: ${join(dir, 'ca.crt')}`,
        'users:', `- name: ${name}`, '  user:', `    token: ${token}`,
        'contexts:', '- name: test', '  context:', '    cluster: test', `    user: ${name}`, ...(namespace ? [`    namespace: ${namespace}`] : []),
        'current-context: test', '',
      ].join('\n'), { mode: 0o600 });
      return path;
    };
    const adminKubeconfig = kubeconfigFor(adminToken, 'admin');
    procs.push(startProc('kube-controller-manager', join(bin, 'kube-controller-manager'), [
      `--kubeconfig=${kubeconfigFor(kcmToken, 'kcm')}`,
      '--bind-address=127.0.0.1', '--secure-port=0', '--leader-elect=false',
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${join(dir, 'sa.key')}`, `--root-ca-file=${join(dir, 'ca.crt')}`,
      '--cluster-signing-cert-file=' + join(dir, 'ca.crt'), '--cluster-signing-key-file=' + join(dir, 'ca.key'),
      // Fast enough for tests; the defaults are for thousands of objects.
      '--concurrent-statefulset-syncs=5', '--concurrent-gc-syncs=20',
      '--v=1',
    ], dir));
    procs.push(startProc('kube-scheduler', join(bin, 'kube-scheduler'), [
      `--kubeconfig=${kubeconfigFor(schedToken, 'scheduler')}`,
      `--authentication-kubeconfig=${kubeconfigFor(schedToken, 'scheduler')}`, `--authorization-kubeconfig=${kubeconfigFor(schedToken, 'scheduler')}`,
      '--bind-address=127.0.0.1', `--secure-port=${await freePort()}`, '--leader-elect=false', '--v=1',
    ], dir));
    // The default ServiceAccount of a namespace is made by the controller-manager: wait for it.
    await waitUntil('the controller-manager (default ServiceAccount)', async () => (await request('/api/v1/namespaces/default/serviceaccounts/default')).status === 200, 90_000, procs);

    const execTool = (tool: string, args: string[], o: { input?: string; env?: NodeJS.ProcessEnv } = {}) => {
      const r = spawnSync(join(bin, tool), args, {
        input: o.input, encoding: 'utf8', maxBuffer: 64 << 20,
        env: { PATH: process.env.PATH, HOME: join(dir, 'home'), KUBECONFIG: adminKubeconfig, HELM_CACHE_HOME: join(dir, 'helm-cache'), HELM_CONFIG_HOME: join(dir, 'helm-config'), HELM_DATA_HOME: join(dir, 'helm-data'), ...o.env },
      });
      return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
    };
    mkdirSync(join(dir, 'home'), { recursive: true });
    const cp: ControlPlane = {
      server, dir, bin, caFile: join(dir, 'ca.crt'), ca, adminToken, adminKubeconfig,
      node: { name: nodeName, token: nodeToken },
      kubeconfigFor,
      kubeConfig(token, namespace) {
        const kc = new KubeConfig();
        kc.loadFromFile(kubeconfigFor(token, `u-${randomBytes(4).toString('hex')}`, namespace));
        return kc;
      },
      audit() {
        if (!existsSync(auditLog)) return [];
        return readFileSync(auditLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent).filter((e) => e.stage === 'ResponseComplete');
      },
      kubectlResult: (args, o) => execTool('kubectl', args, o),
      kubectl(args, o) {
        const r = execTool('kubectl', args, o);
        if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
        return r.stdout;
      },
      helm: (args, o) => execTool('helm', args, o),
      serviceAccountToken(namespace, name) {
        return cp.kubectl(['create', 'token', name, '-n', namespace, '--duration=1h']).trim();
      },
      request,
      async close() {
        await stopAll();
        if (!process.env.KEEP_CLUSTER_DIR) rmSync(dir, { recursive: true, force: true });
      },
    };
    return cp;
  } catch (err) {
    await stopAll();
    throw err;
  }
}
