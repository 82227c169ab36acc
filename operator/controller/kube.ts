// The API clients the controller uses, built once per process from a KubeConfig, and the
// table of resources it reads and writes. Every client sends the same User-Agent, so an
// audit log (or the test API server's request log) tells which replica did what.
import {
  ApiException, CoordinationV1Api, CoreV1Api, CustomObjectsApi, HttpMethod, KubernetesObjectApi, ServerConfiguration,
  createConfiguration, setHeaderMiddleware, type KubeConfig, type ResponseContext,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../api/mailrelay.ts';
import type { KubeObject } from '../desired/meta.ts';

/** One kind the controller lists, watches, reads or writes. */
export interface ResourceKind {
  /** Kind, e.g. StatefulSet. */
  kind: string;
  /** API group; '' for core. */
  group: string;
  /** Version. */
  version: string;
  /** Plural resource name. */
  plural: string;
}

/** The kinds the controller deals with, by kind. */
export const RESOURCES = {
  MailRelay: { kind: 'MailRelay', group: GROUP, version: VERSION, plural: PLURAL },
  StatefulSet: { kind: 'StatefulSet', group: 'apps', version: 'v1', plural: 'statefulsets' },
  ConfigMap: { kind: 'ConfigMap', group: '', version: 'v1', plural: 'configmaps' },
  Service: { kind: 'Service', group: '', version: 'v1', plural: 'services' },
  PodDisruptionBudget: { kind: 'PodDisruptionBudget', group: 'policy', version: 'v1', plural: 'poddisruptionbudgets' },
  NetworkPolicy: { kind: 'NetworkPolicy', group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies' },
  Secret: { kind: 'Secret', group: '', version: 'v1', plural: 'secrets' },
  Pod: { kind: 'Pod', group: '', version: 'v1', plural: 'pods' },
  PersistentVolumeClaim: { kind: 'PersistentVolumeClaim', group: '', version: 'v1', plural: 'persistentvolumeclaims' },
  ServiceMonitor: { kind: 'ServiceMonitor', group: 'monitoring.coreos.com', version: 'v1', plural: 'servicemonitors' },
  PrometheusRule: { kind: 'PrometheusRule', group: 'monitoring.coreos.com', version: 'v1', plural: 'prometheusrules' },
  ScaledObject: { kind: 'ScaledObject', group: 'keda.sh', version: 'v1alpha1', plural: 'scaledobjects' },
} as const satisfies Record<string, ResourceKind>;

/** apiVersion of a resource kind ("v1", "apps/v1"). */
export function apiVersionOf(r: ResourceKind): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`;
}

/** The collection path of a kind, in one namespace or (undefined) across all. */
export function collectionPath(r: ResourceKind, namespace?: string): string {
  const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  return namespace === undefined ? `${base}/${r.plural}` : `${base}/namespaces/${encodeURIComponent(namespace)}/${r.plural}`;
}

/** The path of one object. */
export function objectPath(r: ResourceKind, namespace: string, name: string): string {
  return `${collectionPath(r, namespace)}/${encodeURIComponent(name)}`;
}

/** A list as the API server sends it. */
export interface RawList {
  metadata?: { resourceVersion?: string };
  items: KubeObject[];
}

const RAW = 'raw-json';

/**
 * KubernetesObjectApi with GETs that return the wire JSON untouched. The typed clients
 * deserialise into client-node models (Date objects, renamed fields such as `_from`),
 * while watch events arrive as wire JSON; informer caches fed from both would hold two
 * shapes of the same object. Reads go through the same auth, TLS and middleware.
 */
export class RawKubeApi extends KubernetesObjectApi {
  /** GET path with query parameters; resolves with the decoded JSON body, throws ApiException on a non-2xx answer. */
  async getJson<T = unknown>(path: string, query: Record<string, string | undefined> = {}): Promise<T> {
    const ctx = this.configuration.baseServer.makeRequestContext(path, HttpMethod.GET);
    ctx.setHeaderParam('Accept', 'application/json');
    for (const [k, v] of Object.entries(query)) if (v !== undefined) ctx.setQueryParam(k, v);
    return this.requestPromise(ctx, RAW) as Promise<T>;
  }

  /** Lists a collection as wire JSON, each item with its apiVersion and kind filled in (typed lists omit them). */
  async listRaw(r: ResourceKind, namespace: string | undefined, labelSelector?: string, fieldSelector?: string): Promise<RawList> {
    const list = await this.getJson<RawList>(collectionPath(r, namespace), { labelSelector, fieldSelector });
    const apiVersion = apiVersionOf(r);
    return { metadata: list.metadata ?? {}, items: (list.items ?? []).map((o) => ({ ...o, apiVersion, kind: r.kind })) };
  }

  /** GETs one object as wire JSON; undefined on 404. */
  async getRaw(r: ResourceKind, namespace: string, name: string): Promise<KubeObject | undefined> {
    try {
      const o = await this.getJson<KubeObject>(objectPath(r, namespace, name));
      return { ...o, apiVersion: apiVersionOf(r), kind: r.kind };
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  }

  /** Parses RAW responses without client-node's model deserialisation; everything else as usual. */
  protected override async processResponse<T>(response: ResponseContext, type?: string): Promise<T> {
    if (type !== RAW) return super.processResponse(response, type) as Promise<T>;
    const text = await response.body.text();
    if (response.httpStatusCode >= 200 && response.httpStatusCode <= 299) return JSON.parse(text) as T;
    let body: unknown = text;
    try { body = JSON.parse(text); } catch { /* keep the text */ }
    throw new ApiException(response.httpStatusCode, 'Unsuccessful HTTP Request', body, response.headers);
  }
}

/** The clients of one operator process. */
export interface KubeClients {
  kc: KubeConfig;
  /** Server-side apply and deletes of any kind. */
  objects: KubernetesObjectApi;
  /** Raw reads (lists, gets, discovery). */
  raw: RawKubeApi;
  core: CoreV1Api;
  coordination: CoordinationV1Api;
  custom: CustomObjectsApi;
  /** The User-Agent every request carries. */
  userAgent: string;
}

/** Builds the clients for a KubeConfig, all sending `userAgent`. */
export function makeClients(kc: KubeConfig, userAgent: string): KubeClients {
  const make = <T>(Api: new (config: ReturnType<typeof createConfiguration>) => T): T => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    return new Api(createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kc },
      middleware: [setHeaderMiddleware('User-Agent', userAgent)],
    }));
  };
  return {
    kc,
    objects: make(KubernetesObjectApi),
    raw: make(RawKubeApi),
    core: make(CoreV1Api),
    coordination: make(CoordinationV1Api),
    custom: make(CustomObjectsApi),
    userAgent,
  };
}

/** True for an ApiException with one of the codes. */
export function isApiError(err: unknown, ...codes: number[]): err is ApiException<unknown> {
  return err instanceof ApiException && (codes.length === 0 || codes.includes(err.code));
}
