// Two Services. The headless one governs the StatefulSet (stable pod DNS names) and
// publishes not-ready pods, so Prometheus keeps scraping a draining relay's queue
// metrics. The client one is where mail goes: SMTP only, because it may be a public
// LoadBalancer and the HTTP port also serves POST /drain.
import type { V1Service } from '@kubernetes/client-node';
import type { MailRelayInputs } from '../api/inputs.ts';
import { withDefaults, type MailRelay } from '../api/mailrelay.ts';
import { HTTP_PORT, METRICS_PORT_NAME, SMTP_PORT, SMTP_PORT_NAME } from './layout.ts';
import { selectorLabels, sortedKeys } from './labels.ts';
import { childMeta, type KubeObject } from './meta.ts';
import { childNames } from './names.ts';

/** Label telling the two Services apart (the ServiceMonitor selects the headless one). */
export const SERVICE_ROLE_LABEL = 'mailrelay.io/service';

/** The headless Service of the StatefulSet: SMTP and metrics of every pod, ready or not. */
export function buildHeadlessService(mr: MailRelay, _inputs?: MailRelayInputs): KubeObject & V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMeta(mr, childNames(mr).headlessService, { labels: { [SERVICE_ROLE_LABEL]: 'headless' } }),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selectorLabels(mr),
      ports: [
        { name: SMTP_PORT_NAME, port: SMTP_PORT, targetPort: SMTP_PORT_NAME, protocol: 'TCP' },
        { name: METRICS_PORT_NAME, port: HTTP_PORT, targetPort: METRICS_PORT_NAME, protocol: 'TCP' },
      ],
    },
  };
}

/** The client Service: spec.service.port (25) to the relays' SMTP port, ready pods only. */
export function buildClientService(mr: MailRelay, _inputs?: MailRelayInputs): KubeObject & V1Service {
  const svc = withDefaults(mr.spec).service;
  const spec: NonNullable<V1Service['spec']> = {
    type: svc.type,
    selector: selectorLabels(mr),
    ports: [{ name: SMTP_PORT_NAME, port: svc.port, targetPort: SMTP_PORT_NAME, protocol: 'TCP' }],
  };
  if (svc.externalTrafficPolicy) spec.externalTrafficPolicy = svc.externalTrafficPolicy;
  if (svc.loadBalancerSourceRanges) spec.loadBalancerSourceRanges = [...svc.loadBalancerSourceRanges];
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMeta(mr, childNames(mr).service, {
      labels: { [SERVICE_ROLE_LABEL]: 'client' },
      annotations: sortedKeys(svc.annotations ?? {}),
    }),
    spec,
  };
}
