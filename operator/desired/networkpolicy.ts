// The optional NetworkPolicy. Ingress: SMTP from the allowed clients only, the HTTP
// port (metrics, health, drain) from metricsFrom. Egress: DNS, and the SMTP ports
// (25 MX, 465 implicit TLS, 587 submission, plus a smarthost's own port), and in mode
// mx with MTA-STS, HTTPS (443) for the policy fetch (RFC 8461 §3.3). Nothing else: a
// compromised relay cannot reach the API server or other services.
// Wire-format types: @kubernetes/client-node names `from` `_from` (it is a JS keyword to its generator).
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { INetworkPolicyPeer } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer';
import type { INetworkPolicyPort } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPort';
import type { MailRelayInputs } from '../api/inputs.ts';
import { withDefaults, type MailRelay } from '../api/mailrelay.ts';
import type { NetworkPeer } from '../api/schema.ts';
import { HTTP_PORT, SMTP_PORT } from './layout.ts';
import { selectorLabels } from './labels.ts';
import { childMeta, type KubeObject } from './meta.ts';
import { childNames } from './names.ts';

/** Outbound SMTP ports always allowed: MX (25), implicit TLS (465), submission (587). */
export const EGRESS_SMTP_PORTS = [25, 465, 587] as const;
/** HTTPS port of mta-sts.<domain> policy hosts (RFC 8461 §3.3). */
export const MTA_STS_PORT = 443;

const tcp = (port: number): INetworkPolicyPort => ({ protocol: 'TCP', port });

function peers(list: readonly NetworkPeer[]): INetworkPolicyPeer[] {
  return list.map((p) => structuredClone(p) as INetworkPolicyPeer);
}

/** The NetworkPolicy, or undefined when spec.networkPolicy.enabled is false. */
export function buildNetworkPolicy(mr: MailRelay, _inputs?: MailRelayInputs): (KubeObject & { spec: NonNullable<INetworkPolicy['spec']> }) | undefined {
  const spec = withDefaults(mr.spec);
  const np = spec.networkPolicy;
  if (!np.enabled) return undefined;
  const smtpFrom = np.allowedClients.length > 0 ? peers(np.allowedClients) : [{ podSelector: {} }];
  const metricsFrom = np.metricsFrom ? peers(np.metricsFrom) : [{ namespaceSelector: {} }];
  const egressPorts = new Set<number>(EGRESS_SMTP_PORTS);
  if (spec.delivery.smarthost) egressPorts.add(spec.delivery.smarthost.port);
  if (spec.delivery.mode === 'mx' && spec.delivery.mtaSts.enabled) egressPorts.add(MTA_STS_PORT);
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: childMeta(mr, childNames(mr).networkPolicy),
    spec: {
      podSelector: { matchLabels: selectorLabels(mr) },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [
        { from: smtpFrom, ports: [tcp(SMTP_PORT)] },
        { from: metricsFrom, ports: [tcp(HTTP_PORT)] },
      ],
      egress: [
        { ports: [{ protocol: 'UDP', port: 53 }, tcp(53)] },
        { ports: [...egressPorts].sort((a, b) => a - b).map(tcp) },
      ],
    },
  };
}
