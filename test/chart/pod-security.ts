// The "restricted" Pod Security Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/,
// as enforced by the PodSecurity admission controller since Kubernetes 1.25), checked on a
// pod spec: a namespace labelled pod-security.kubernetes.io/enforce=restricted rejects any
// pod for which this returns a violation. Includes the baseline checks restricted builds on.

interface SecurityContext {
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  runAsNonRoot?: boolean;
  runAsUser?: number;
  capabilities?: { add?: string[]; drop?: string[] };
  seccompProfile?: { type?: string };
  seLinuxOptions?: { type?: string; user?: string; role?: string };
  procMount?: string;
  windowsOptions?: { hostProcess?: boolean };
  appArmorProfile?: { type?: string };
  sysctls?: { name: string }[];
}

interface Container {
  name: string;
  securityContext?: SecurityContext;
  ports?: { hostPort?: number }[];
}

/** The parts of a core/v1 PodSpec the standard looks at. */
export interface PodSpecLike {
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  securityContext?: SecurityContext;
  containers: Container[];
  initContainers?: Container[];
  ephemeralContainers?: Container[];
  volumes?: Record<string, unknown>[];
}

const RESTRICTED_VOLUME_TYPES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);
const SAFE_SYSCTLS = new Set(['kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range', 'net.ipv4.ip_local_reserved_ports', 'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_keepalive_intvl', 'net.ipv4.tcp_keepalive_probes']);
const SELINUX_TYPES = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);

/** Every violation of the restricted profile, as "where: what" strings; empty when the pod is admitted. */
export function restrictedViolations(spec: PodSpecLike): string[] {
  const v: string[] = [];
  const pod = spec.securityContext ?? {};
  if (spec.hostNetwork) v.push('pod: hostNetwork');
  if (spec.hostPID) v.push('pod: hostPID');
  if (spec.hostIPC) v.push('pod: hostIPC');
  if (pod.windowsOptions?.hostProcess) v.push('pod: windowsOptions.hostProcess');
  for (const s of pod.sysctls ?? []) if (!SAFE_SYSCTLS.has(s.name)) v.push(`pod: unsafe sysctl ${s.name}`);
  if (pod.runAsUser === 0) v.push('pod: runAsUser 0');
  if (pod.seLinuxOptions?.user || pod.seLinuxOptions?.role || !SELINUX_TYPES.has(pod.seLinuxOptions?.type ?? '')) v.push('pod: seLinuxOptions');
  if (pod.appArmorProfile?.type === 'Unconfined') v.push('pod: appArmorProfile Unconfined');
  for (const vol of spec.volumes ?? []) {
    const types = Object.keys(vol).filter((k) => k !== 'name');
    for (const t of types) if (!RESTRICTED_VOLUME_TYPES.has(t)) v.push(`volume ${String(vol.name)}: type ${t}`);
  }
  const podSeccomp = pod.seccompProfile?.type;
  const all = [...spec.containers, ...(spec.initContainers ?? []), ...(spec.ephemeralContainers ?? [])];
  for (const c of all) {
    const sc = c.securityContext ?? {};
    const where = `container ${c.name}`;
    if (sc.privileged) v.push(`${where}: privileged`);
    if (sc.windowsOptions?.hostProcess) v.push(`${where}: windowsOptions.hostProcess`);
    if (sc.procMount !== undefined && sc.procMount !== 'Default') v.push(`${where}: procMount ${sc.procMount}`);
    if (sc.seLinuxOptions?.user || sc.seLinuxOptions?.role || !SELINUX_TYPES.has(sc.seLinuxOptions?.type ?? '')) v.push(`${where}: seLinuxOptions`);
    if (sc.appArmorProfile?.type === 'Unconfined') v.push(`${where}: appArmorProfile Unconfined`);
    for (const p of c.ports ?? []) if (p.hostPort) v.push(`${where}: hostPort ${p.hostPort}`);
    if (sc.allowPrivilegeEscalation !== false) v.push(`${where}: allowPrivilegeEscalation must be false`);
    const nonRoot = sc.runAsNonRoot ?? pod.runAsNonRoot;
    if (nonRoot !== true) v.push(`${where}: runAsNonRoot must be true`);
    if (sc.runAsUser === 0) v.push(`${where}: runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? podSeccomp;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') v.push(`${where}: seccompProfile must be RuntimeDefault or Localhost`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) v.push(`${where}: capabilities must drop ALL`);
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') v.push(`${where}: adds capability ${cap}`);
  }
  return v;
}
