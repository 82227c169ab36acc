// What the API server fills in on built-in kinds before storing them: the common
// defaults (so a controller comparing desired with live state meets them as it
// would on a real cluster), Secret.stringData folding, Service cluster IPs and
// Namespace status. A subset of the real defaulting, covering what operators touch.
import { isObj } from './types.ts';
import type { KubeObject, Obj } from './types.ts';

function setDefault(o: Obj, key: string, value: unknown): void {
  if (o[key] === undefined || o[key] === null) o[key] = value;
}

function defaultContainer(c: unknown): void {
  if (!isObj(c)) return;
  setDefault(c, 'terminationMessagePath', '/dev/termination-log');
  setDefault(c, 'terminationMessagePolicy', 'File');
  if (c.imagePullPolicy === undefined && typeof c.image === 'string') {
    const tagged = /:[^/:@]+$/.test(c.image);
    c.imagePullPolicy = !tagged || c.image.endsWith(':latest') ? 'Always' : 'IfNotPresent';
  }
  setDefault(c, 'resources', {});
  if (Array.isArray(c.ports)) for (const p of c.ports) if (isObj(p)) setDefault(p, 'protocol', 'TCP');
  for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
    const pr = c[probe];
    if (!isObj(pr)) continue;
    setDefault(pr, 'timeoutSeconds', 1);
    setDefault(pr, 'periodSeconds', 10);
    setDefault(pr, 'successThreshold', 1);
    setDefault(pr, 'failureThreshold', 3);
    if (isObj(pr.httpGet)) setDefault(pr.httpGet, 'scheme', 'HTTP');
  }
}

/** Defaults a PodSpec in place. */
export function defaultPodSpec(spec: unknown): void {
  if (!isObj(spec)) return;
  setDefault(spec, 'restartPolicy', 'Always');
  setDefault(spec, 'terminationGracePeriodSeconds', 30);
  setDefault(spec, 'dnsPolicy', 'ClusterFirst');
  setDefault(spec, 'securityContext', {});
  setDefault(spec, 'schedulerName', 'default-scheduler');
  for (const list of ['initContainers', 'containers']) {
    const cs = spec[list];
    if (Array.isArray(cs)) cs.forEach(defaultContainer);
  }
  if (Array.isArray(spec.volumes)) {
    for (const v of spec.volumes) {
      if (!isObj(v)) continue;
      for (const src of ['configMap', 'secret']) if (isObj(v[src])) setDefault(v[src], 'defaultMode', 420);
    }
  }
}

function defaultTemplate(spec: Obj): void {
  const t = spec.template;
  if (isObj(t)) {
    if (!isObj(t.metadata)) t.metadata = {};
    defaultPodSpec(t.spec);
  }
}

/** Hands out cluster IPs from 10.96.0.0/12, never reusing one in this server's life. */
export class IpAllocator {
  private next = 10;

  /** The next free address. */
  allocate(): string {
    const n = this.next++;
    return `10.96.${Math.floor(n / 254)}.${(n % 254) + 1}`;
  }
}

/**
 * Fills in server-side defaults for a built-in kind in place. `old` is the stored
 * object on update (carried-over allocations such as clusterIP come from it).
 */
export function defaultBuiltin(group: string, kind: string, obj: KubeObject, old: KubeObject | undefined, ips: IpAllocator): void {
  const spec = isObj(obj.spec) ? obj.spec : undefined;
  switch (`${group}/${kind}`) {
    case 'apps/StatefulSet':
      if (!spec) return;
      setDefault(spec, 'replicas', 1);
      setDefault(spec, 'podManagementPolicy', 'OrderedReady');
      setDefault(spec, 'updateStrategy', { type: 'RollingUpdate', rollingUpdate: { partition: 0 } });
      setDefault(spec, 'revisionHistoryLimit', 10);
      setDefault(spec, 'persistentVolumeClaimRetentionPolicy', { whenDeleted: 'Retain', whenScaled: 'Retain' });
      if (Array.isArray(spec.volumeClaimTemplates)) {
        for (const vct of spec.volumeClaimTemplates) {
          if (!isObj(vct)) continue;
          setDefault(vct, 'apiVersion', 'v1');
          setDefault(vct, 'kind', 'PersistentVolumeClaim');
          if (isObj(vct.spec)) setDefault(vct.spec, 'volumeMode', 'Filesystem');
          setDefault(vct, 'status', { phase: 'Pending' });
        }
      }
      defaultTemplate(spec);
      return;
    case 'apps/Deployment':
      if (!spec) return;
      setDefault(spec, 'replicas', 1);
      setDefault(spec, 'strategy', { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } });
      setDefault(spec, 'revisionHistoryLimit', 10);
      setDefault(spec, 'progressDeadlineSeconds', 600);
      defaultTemplate(spec);
      return;
    case '/Pod':
      defaultPodSpec(spec);
      if (!old) obj.status = { phase: 'Pending', qosClass: 'BestEffort' };
      return;
    case '/Service': {
      if (!spec) return;
      setDefault(spec, 'type', 'ClusterIP');
      setDefault(spec, 'sessionAffinity', 'None');
      if (Array.isArray(spec.ports)) {
        for (const p of spec.ports) {
          if (!isObj(p)) continue;
          setDefault(p, 'protocol', 'TCP');
          setDefault(p, 'targetPort', p.port);
        }
      }
      if (spec.type !== 'ExternalName') {
        const oldSpec = old && isObj(old.spec) ? old.spec : undefined;
        if (spec.clusterIP === undefined || spec.clusterIP === '') spec.clusterIP = oldSpec?.clusterIP ?? ips.allocate();
        setDefault(spec, 'clusterIPs', [spec.clusterIP]);
        setDefault(spec, 'ipFamilies', ['IPv4']);
        setDefault(spec, 'ipFamilyPolicy', 'SingleStack');
        setDefault(spec, 'internalTrafficPolicy', 'Cluster');
      }
      if (!old) obj.status = { loadBalancer: {} };
      return;
    }
    case '/Secret': {
      setDefault(obj, 'type', 'Opaque');
      if (isObj(obj.stringData)) {
        const data = isObj(obj.data) ? obj.data : {};
        for (const [k, v] of Object.entries(obj.stringData)) data[k] = Buffer.from(String(v), 'utf8').toString('base64');
        obj.data = data;
        delete obj.stringData;
      }
      return;
    }
    case '/Namespace': {
      const labels = { ...(obj.metadata.labels ?? {}) };
      labels['kubernetes.io/metadata.name'] = obj.metadata.name ?? '';
      obj.metadata.labels = labels;
      if (!isObj(obj.spec)) obj.spec = {};
      setDefault(obj.spec as Obj, 'finalizers', ['kubernetes']);
      if (!old) obj.status = { phase: 'Active' };
      return;
    }
    case '/PersistentVolumeClaim':
      if (spec) setDefault(spec, 'volumeMode', 'Filesystem');
      if (!old) obj.status = { phase: 'Pending' };
      return;
    case 'networking.k8s.io/NetworkPolicy':
      if (spec && spec.policyTypes === undefined) spec.policyTypes = spec.egress !== undefined ? ['Ingress', 'Egress'] : ['Ingress'];
      return;
    case 'apiextensions.k8s.io/CustomResourceDefinition':
      if (spec && isObj(spec.names)) {
        const names = spec.names;
        setDefault(names, 'singular', String(names.kind ?? '').toLowerCase());
        setDefault(names, 'listKind', `${String(names.kind ?? '')}List`);
      }
      if (spec) setDefault(spec, 'conversion', { strategy: 'None' });
      return;
  }
}
