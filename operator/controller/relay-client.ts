// The operator's side of a scale-down (docs/adr/0003): it talks to the relay pods that a
// scale-down will remove, over the pod network on the relay's HTTP port:
//   GET    /metrics               mailrelay_queue_messages (summed over states) and mailrelay_draining
//   POST   /drain?hold=true        refuse new mail, deliver the queue, and stay up (do not exit)
//                                 so the operator can see the spool reach zero (ADR 0003 R1)
//   DELETE /drain                 stop draining (a scale-up wants the pod back)
//   GET    /status                the queue and spool state (relay/status.ts): the autoscaler's
//                                 and the healing conditions' input (docs/adr/0009)
// A pod that cannot be reached is "unknown", which the plan treats as holding mail.
// ADR 0003 R2: from other hosts the relay takes /drain only with its drain token
// (http.drainTokenFile), sent as a bearer token; see HttpRelayPodClientOptions.token.
import { DRAIN_TOKEN_KEY, HTTP_PORT } from '../desired/layout.ts';
import { DRAIN_TOKEN_SECRET_SUFFIX } from '../desired/names.ts';
import type { SpoolObservation } from '../desired/scale-down.ts';
import type { KubeObject } from '../desired/meta.ts';
import { relayStatusProblems, type RelayStatus } from '../../relay/status.ts';

/** Talks to one relay pod's HTTP endpoint. */
export interface RelayPodClient {
  /** What the pod's /metrics say about its spool; queuedMessages undefined when it cannot be scraped. */
  observe(pod: KubeObject, ordinal: number): Promise<SpoolObservation>;
  /** Asks the pod to drain and stay up. */
  drain(pod: KubeObject): Promise<void>;
  /** Asks the pod to stop draining. */
  undrain(pod: KubeObject): Promise<void>;
  /** The pod's GET /status document; rejects when it cannot be read or is not one this operator understands. */
  status(pod: KubeObject): Promise<RelayStatus>;
}

/**
 * Sums the samples of one metric in Prometheus text exposition format, optionally only
 * those whose labels include `labels`; undefined when no sample matches. Pure.
 */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?\s*$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (!Object.entries(labels).every(([k, v]) => got[k] === v)) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    sum = (sum ?? 0) + value;
  }
  return sum;
}

/**
 * Where the operator finds a relay's drain token: Secret `<MailRelay name>-drain-token`,
 * key `token`, in the MailRelay's namespace. The reconcile creates it (desired/drain-token.ts)
 * and the pods mount the same key as their http.drainTokenFile (desired/statefulset.ts).
 */
export { DRAIN_TOKEN_KEY, DRAIN_TOKEN_SECRET_SUFFIX };

/** A token lookup for httpRelayPodClient reading the drain-token Secret of the pod's MailRelay from a Secret cache. */
export function drainTokenFromSecrets(secrets: { get(namespace: string, name: string): KubeObject | undefined }): (pod: KubeObject) => string | undefined {
  return (pod) => {
    const instance = pod.metadata.labels?.['app.kubernetes.io/instance'];
    if (!instance) return undefined;
    const secret = secrets.get(pod.metadata.namespace ?? '', `${instance}${DRAIN_TOKEN_SECRET_SUFFIX}`);
    const data = (secret?.data as Record<string, string> | undefined)?.[DRAIN_TOKEN_KEY];
    return data ? Buffer.from(data, 'base64').toString('utf8').trim() || undefined : undefined;
  };
}

/** The base URL of a pod's relay HTTP server (http://<podIP>:9090); undefined without a pod IP. */
export function podBaseUrl(pod: KubeObject): string | undefined {
  const ip = (pod.status as { podIP?: string } | undefined)?.podIP;
  if (!ip) return undefined;
  return `http://${ip.includes(':') ? `[${ip}]` : ip}:${HTTP_PORT}`;
}

/** Options of the HTTP RelayPodClient. */
export interface HttpRelayPodClientOptions {
  /** Where a pod's relay HTTP server is (default podBaseUrl). */
  baseUrl?: (pod: KubeObject) => string | undefined;
  /** Per-request timeout (default 3 s). */
  timeoutMs?: number;
  /** The bearer token the pod's relay wants for /drain (its http.drainTokenFile); undefined sends none. */
  token?: (pod: KubeObject) => string | undefined;
}

/** The RelayPodClient that speaks HTTP to the pods. */
export function httpRelayPodClient(opts: HttpRelayPodClientOptions = {}): RelayPodClient {
  const baseUrl = opts.baseUrl ?? podBaseUrl;
  const timeoutMs = opts.timeoutMs ?? 3000;
  const call = async (pod: KubeObject, method: string, path: string): Promise<string> => {
    const base = baseUrl(pod);
    if (!base) throw new Error(`pod ${pod.metadata.name} has no address yet`);
    // /metrics is open; /drain and /status are admin routes (ADR 0003 R2).
    const token = path === '/metrics' ? undefined : opts.token?.(pod);
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const res = await fetch(`${base}${path}`, { method, headers, signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path} on pod ${pod.metadata.name}: HTTP ${res.status} ${body.trim()}`);
    return body;
  };
  return {
    async observe(pod, ordinal) {
      try {
        const text = await call(pod, 'GET', '/metrics');
        const queued = sumMetric(text, 'mailrelay_queue_messages');
        const obs: SpoolObservation = { ordinal, draining: sumMetric(text, 'mailrelay_draining') === 1 };
        if (queued !== undefined) obs.queuedMessages = queued;
        return obs;
      } catch {
        return { ordinal, draining: false };
      }
    },
    async drain(pod) {
      await call(pod, 'POST', '/drain?hold=true');
    },
    async undrain(pod) {
      await call(pod, 'DELETE', '/drain');
    },
    async status(pod) {
      const doc = JSON.parse(await call(pod, 'GET', '/status')) as unknown;
      const problems = relayStatusProblems(doc);
      if (problems.length > 0) throw new Error(`GET /status on pod ${pod.metadata.name}: ${problems.join('; ')}`);
      return doc as RelayStatus;
    },
  };
}
