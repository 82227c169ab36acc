// Before the operator starts its informers: one request that proves the kubeconfig is
// usable, so a wrong or missing one fails at once with one line that says what is wrong,
// rather than as informer restarts logged forever (issue 13: 45 "watch failed" lines in 8 s).
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ApiException, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { describeFetchError } from '../../relay/cli/client.ts';
import { GROUP, PLURAL, VERSION } from '../api/mailrelay.ts';

/** Where a kubeconfig would come from, or undefined when there is none (client-node would silently use http://localhost:8080). */
export function kubeconfigSource(env: NodeJS.ProcessEnv, home = homedir()): string | undefined {
  if (env.KUBECONFIG) return `kubeconfig ${env.KUBECONFIG}`;
  const file = join(home, '.kube', 'config');
  if (existsSync(file)) return `kubeconfig ${file}`;
  if (env.KUBERNETES_SERVICE_HOST) return 'in-cluster service account';
  return undefined;
}

/**
 * Lists at most one MailRelay where the operator will watch, within timeoutMs. Resolves when
 * the API server answers; rejects with an Error whose message is the one line to print.
 */
export async function preflight(kc: KubeConfig, source: string, namespace: string | undefined, timeoutMs = 15_000): Promise<void> {
  const server = kc.getCurrentCluster()?.server ?? '(no server)';
  const api = kc.makeApiClient(CustomObjectsApi);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the Kubernetes API server at ${server} (${source}) did not answer within ${timeoutMs / 1000}s`)), timeoutMs);
  });
  const list = namespace === undefined
    ? api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, limit: 1 })
    : api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, limit: 1 });
  try {
    await Promise.race([list, timeout]);
  } catch (err) {
    if (err instanceof ApiException) {
      if (err.code === 404) throw new Error(`the MailRelay CRD is not installed (${PLURAL}.${GROUP}/${VERSION} not served by ${server}): kubectl apply --server-side -f crds/`);
      if (err.code === 401) throw new Error(`the Kubernetes API server at ${server} (${source}) rejected the credentials (HTTP 401)`);
      if (err.code === 403) throw new Error(`the Kubernetes API server at ${server} (${source}) does not let this identity list ${PLURAL}.${GROUP} (HTTP 403): check the operator's RBAC`);
      throw new Error(`the Kubernetes API server at ${server} (${source}) answered HTTP ${err.code} to a list of ${PLURAL}.${GROUP}`);
    }
    if ((err as Error).message.startsWith('the Kubernetes API server')) throw err;
    throw new Error(`cannot reach the Kubernetes API server at ${server} (${source}): ${describeFetchError(err)}`);
  } finally {
    clearTimeout(timer);
  }
}
