// The MailRelay API, defined ONCE: these zod schemas give the TypeScript types
// (z.input = as written, z.output = defaults filled), the defaults (withDefaults parses
// with them), field-level validation with paths, and the CRD's openAPIV3Schema
// (operator/api/crd.ts converts them). A description on every field becomes the CRD's
// field documentation. Cross-field rules live in rules.ts, as CEL and TypeScript pairs.
import { z } from 'zod';
import type { V1Affinity } from '@kubernetes/client-node';
import { parseCidr } from '../../relay/net/cidr.ts';
import { DURATION_PATTERN, parseDuration } from './duration.ts';
import { QUANTITY_PATTERN, parseQuantity } from './quantity.ts';

/** Validation failures the operator reports, each naming the spec field at fault. */
export type ValidationReason =
  | 'InvalidValue' // wrong type, out of range, not one of the allowed values
  | 'InvalidName' // metadata.name unusable for the children's names
  | 'InvalidCIDR'
  | 'InvalidQuantity'
  | 'InvalidDuration'
  | 'InvalidCombination' // a cross-field rule (rules.ts) does not hold
  | 'ReservedKey' // a user label/annotation would overwrite one the operator owns
  | 'SecretNotFound'
  | 'SecretKeyMissing'
  | 'UnknownField' // not in the schema (the API server rejects it under strict field validation)
  | 'InvalidRelayConfig'; // the relay's own schema rejected the rendered config

/** Regex of a DNS-1123 subdomain (Secret and StorageClass names). */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Regex of a Secret data key. */
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
/** Regex of a hostname or IP address (no port, no brackets). */
const HOST = /^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$/;

const reason = (r: ValidationReason) => ({ reason: r });
// The refinements below pass unparsable text (?? 1): the pattern check already reports it.

/** A quantity string such as "25Mi" (the pattern is enforced by the API server too). */
const quantity = z.string().max(64)
  .regex(new RegExp(QUANTITY_PATTERN), { message: 'not a quantity (e.g. "25Mi", "10Gi")' })
  .refine((s) => (parseQuantity(s) ?? 1) > 0, { message: 'must be greater than zero', params: reason('InvalidQuantity') });

/** A resource quantity as Kubernetes takes it in resources: an integer or a quantity string. */
const resourceQuantity = z.union([z.number().int().min(0), z.string().max(64).regex(new RegExp(QUANTITY_PATTERN), { message: 'not a quantity (e.g. "500m", "128Mi")' })])
  .meta({ 'x-kubernetes-int-or-string': true, description: 'a quantity: an integer, or a string such as "500m" or "128Mi"' });

/** A duration string such as "5m" or "120h" (units ms, s, m, h). */
const duration = z.string().max(64)
  .regex(new RegExp(DURATION_PATTERN), { message: 'not a duration (e.g. "90s", "5m", "120h"; units ms, s, m, h)' })
  .refine((s) => (parseDuration(s) ?? 1) > 0, { message: 'must be greater than zero', params: reason('InvalidDuration') });

/** A CIDR ("10.0.0.0/8", "fd00::/8") or a bare address. */
const cidr = z.string().min(1).max(64)
  .refine((s) => parseCidr(s) !== null, { message: 'not a valid CIDR (e.g. 10.0.0.0/8 or fd00::/8)', params: reason('InvalidCIDR') });

/**
 * A network in CIDR form with its prefix length ("10.0.0.1/32", not "10.0.0.1"): what a
 * NetworkPolicy ipBlock and a Service's loadBalancerSourceRanges take. The real API
 * server rejects a bare address there, so a pattern makes the CRD reject it at admission
 * instead of every apply of the child failing.
 */
const networkCidr = z.string().min(1).max(64)
  .refine((s) => parseCidr(s) !== null, { message: 'not a valid CIDR (e.g. 10.0.0.0/8 or fd00::/8)', params: reason('InvalidCIDR'), abort: true })
  .regex(/^[0-9A-Fa-f:.]+\/[0-9]{1,3}$/, { message: 'must be a CIDR with a prefix length (e.g. 10.0.0.1/32), not a bare address' });

/** A label value (k8s.io/apimachinery IsValidLabelValue): at most 63 characters, alphanumeric at both ends. */
const labelValue = z.string().max(63).regex(/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/, { message: 'not a valid label value (at most 63 characters: letters, digits, "-", "_", "." and alphanumeric at both ends)' });
/** A label key (a qualified name with an optional DNS-subdomain prefix). */
const labelKey = z.string().max(317).regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, { message: 'not a valid label key' });
/** A map of labels, validated as the API server validates them on the pods. */
const labelMap = (what: string) => z.record(labelKey, labelValue).optional().describe(what);

const secretName = z.string().min(1).max(253).regex(DNS_SUBDOMAIN, { message: 'not a valid Secret name (DNS-1123 subdomain)' });
const secretKey = (def: string) => z.string().min(1).max(253).regex(SECRET_KEY, { message: 'not a valid Secret key' }).default(def);
const stringMap = (what: string) => z.record(z.string().max(317), z.string().max(65536)).optional().describe(what);

/** A label selector (metav1.LabelSelector). */
const LabelSelectorSchema = z.object({
  matchLabels: z.record(z.string().max(317), z.string().max(63)).optional().describe('labels that must all match'),
  matchExpressions: z.array(z.object({
    key: z.string().min(1).max(317).describe('label key'),
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']).describe('how key and values relate'),
    values: z.array(z.string().max(63).describe('a label value')).max(64).optional().describe('values for In and NotIn'),
  }).describe('a label requirement')).max(32).optional().describe('label requirements that must all hold'),
}).describe('a label selector; an empty selector selects everything');

/** A network peer (networking.k8s.io/v1 NetworkPolicyPeer). */
const NetworkPeerSchema = z.object({
  ipBlock: z.object({
    cidr: networkCidr.describe('allowed network'),
    except: z.array(networkCidr.describe('excluded network')).max(32).optional().describe('networks inside cidr to exclude'),
  }).optional().describe('an IP network (for clients outside the cluster; note that SNAT may hide client addresses)'),
  namespaceSelector: LabelSelectorSchema.optional().describe('namespaces whose pods are allowed (with podSelector: those pods in those namespaces)'),
  podSelector: LabelSelectorSchema.optional().describe('pods allowed (in this namespace unless namespaceSelector is set)'),
}).superRefine((peer, ctx) => {
  // networking/v1 validation: exactly one of ipBlock or the selectors.
  const selectors = peer.namespaceSelector !== undefined || peer.podSelector !== undefined;
  if (peer.ipBlock !== undefined && selectors) ctx.addIssue({ code: 'custom', message: 'a peer has either ipBlock or namespaceSelector/podSelector, not both', path: ['ipBlock'], params: { reason: 'InvalidCombination' } });
  if (peer.ipBlock === undefined && !selectors) ctx.addIssue({ code: 'custom', message: 'an empty peer: set ipBlock, namespaceSelector or podSelector', params: { reason: 'InvalidValue' } });
}).describe('a NetworkPolicy peer: ipBlock, or namespaceSelector and/or podSelector');

/** A reference to one key of a Secret in the MailRelay's namespace. */
const secretKeyRef = (what: string, defaultKey: string) => z.object({
  name: secretName.describe(`name of the Secret holding ${what}`),
  key: secretKey(defaultKey).describe(`key in the Secret holding ${what}`),
});

/** TLS policy for a connection to a smarthost (same values as the relay's). */
const TlsPolicy = z.enum(['opportunistic', 'required', 'implicit', 'none']);

/** Outbound delivery settings. */
export const DeliverySchema = z.object({
  mode: z.enum(['smarthost', 'mx']).default('mx')
    .describe('smarthost: send everything to delivery.smarthost; mx: deliver to each recipient domain\'s MX hosts (needs outbound port 25)'),
  heloName: z.string().min(1).max(253).regex(HOST, { message: 'not a hostname' }).optional()
    .describe('name sent in EHLO; defaults to the pod\'s hostname. For mx mode, set it to a name whose A/PTR records match your egress IP'),
  smarthost: z.object({
    host: z.string().min(1).max(253).regex(HOST, { message: 'not a hostname or IP address' }).describe('smarthost hostname or IP address'),
    port: z.number().int().min(1).max(65535).default(587).describe('smarthost port (587 submission, 465 implicit TLS, 25)'),
    tls: TlsPolicy.default('required')
      .describe('TLS towards the smarthost: opportunistic (STARTTLS if offered), required (STARTTLS or fail), implicit (TLS from the first byte, port 465), none. required and implicit verify the certificate chain and that it is valid for host (or serverName); a failure defers the mail (4.7.5)'),
    caSecretRef: secretKeyRef('the PEM CA bundle the smarthost certificate must chain to', 'ca.crt').optional()
      .describe('CA bundle (e.g. a private CA) trusted for the smarthost instead of the public CAs; the Secret key is mounted into the relay pods and rotating it rolls them'),
    serverName: z.string().min(1).max(253).regex(HOST, { message: 'not a hostname or IP address' }).optional()
      .describe('name the smarthost certificate is checked against (and sent as SNI) when it differs from host, e.g. when host is an IP address'),
    insecureSkipVerify: z.boolean().default(false)
      .describe('do not verify the smarthost certificate: anyone who can intercept the connection can read the mail and the credentials. The relay logs a warning at start; for tests only'),
    credentialsSecretRef: z.object({
      name: secretName.describe('name of the Secret holding the SMTP AUTH credentials'),
      usernameKey: secretKey('username').describe('key holding the user name'),
      passwordKey: secretKey('password').describe('key holding the password'),
    }).optional().describe('SMTP AUTH credentials for the smarthost; the relay sends them only over TLS whose certificate passed verification (or with insecureSkipVerify), never in cleartext'),
  }).optional().describe('the smarthost all mail is handed to (mode smarthost only)'),
  mtaSts: z.object({
    enabled: z.boolean().default(true)
      .describe('honour recipient domains\' MTA-STS policies (RFC 8461) in mode mx: a domain in enforce mode gets mail only on its listed MX hosts over verified TLS, else the mail is deferred (4.7.5); needs egress to port 443 for the policy fetch'),
  }).prefault({}).describe('MTA-STS for MX delivery (no effect in mode smarthost)'),
  pipelining: z.boolean().default(true).describe('use PIPELINING (RFC 2920) when the remote server offers it'),
  chunking: z.boolean().default(true).describe('use CHUNKING/BDAT (RFC 3030) when the remote server offers it'),
  maxRecipientsPerTransaction: z.number().int().min(1).max(10000).default(100)
    .describe('recipients per SMTP transaction before a message is split (RFC 5321 §4.5.3.1.8: servers must take at least 100)'),
  concurrencyPerDestination: z.number().int().min(1).max(1000).default(10).describe('simultaneous connections per destination, per replica'),
  retry: z.object({
    schedule: z.array(duration.describe('a delay before the next attempt')).min(1).max(32)
      .default(['1m', '5m', '15m', '30m', '1h', '2h', '4h'])
      .describe('delays between delivery attempts; the last one repeats until maxAge'),
    maxAge: duration.default('120h').describe('how long a deferred recipient is retried before it bounces with 4.4.7'),
  }).prefault({}).describe('when deferred recipients are retried, and for how long'),
  overQuotaPolicy: z.enum(['bounce', 'retry']).default('bounce')
    .describe('5.2.2 mailbox full: bounce at once, or retry until retry.maxAge as a persistent transient failure'),
  dkim: z.object({
    domain: z.string().min(1).max(253).regex(HOST, { message: 'not a domain name' }).describe('d= domain of the signature'),
    selector: z.string().min(1).max(63).regex(/^[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?$/, { message: 'not a DKIM selector' })
      .describe('s= selector; the public key is published at <selector>._domainkey.<domain>'),
    keySecretRef: secretKeyRef('the PEM private key (RSA 2048+ or Ed25519)', 'private.key').describe('the Secret key holding the DKIM private key'),
  }).optional().describe('DKIM-sign outgoing mail before the first delivery attempt'),
}).prefault({}).describe('how mail leaves the relay');

/** spec.autoscaling: who scales the relay on its queues, within which bounds and targets. */
export const AutoscalingSchema = z.object({
  mode: z.enum(['operator', 'keda']).default('operator')
    .describe('operator: the operator reads every pod\'s queue (GET /status) and sets the replicas itself; keda: the operator renders a KEDA ScaledObject (when the keda.sh CRDs exist) whose Prometheus triggers scale the MailRelay through its scale subresource'),
  minReplicas: z.number().int().min(1).max(1000).default(1).describe('fewest relay pods'),
  maxReplicas: z.number().int().min(1).max(1000).describe('most relay pods'),
  targetQueuePerReplica: z.number().int().min(1).max(10_000_000).default(1000)
    .describe('queued messages (due or being delivered; deferred ones left out) per relay pod above which the relay scales up'),
  targetOldestAgeSeconds: z.number().int().min(1).max(432_000).default(120)
    .describe('age of the oldest queued (not deferred) message above which the relay scales up by one pod'),
  scaleUpStabilizationSeconds: z.number().int().min(0).max(3600).default(0)
    .describe('how long a target must be exceeded before scaling up (0: at once)'),
  scaleDownStabilizationSeconds: z.number().int().min(0).max(86_400).default(300)
    .describe('how long the queue must stay well below the targets before each one-pod step down; every step then drains that pod first'),
  keda: z.object({
    serverAddress: z.string().min(1).max(1024).regex(/^https?:\/\/[^\s]+$/, { message: 'not an http(s) URL' })
      .describe('URL of the Prometheus that scrapes the relays (e.g. http://prometheus-operated.monitoring.svc:9090)'),
    pollingIntervalSeconds: z.number().int().min(1).max(3600).default(15).describe('how often KEDA queries Prometheus'),
    authenticationRef: z.object({ name: z.string().min(1).max(253).regex(DNS_SUBDOMAIN, { message: 'not a valid object name (DNS-1123 subdomain)' }).describe('name of the TriggerAuthentication') }).optional()
      .describe('a KEDA TriggerAuthentication in the MailRelay\'s namespace for the Prometheus queries'),
  }).optional().describe('the ScaledObject\'s Prometheus triggers (mode keda only)'),
});

/** The desired state of a MailRelay. */
export const MailRelaySpecSchema = z.object({
  replicas: z.number().int().min(0).max(1000).optional()
    .describe('number of relay pods, each with its own spool volume; default 2 (autoscaling.minReplicas with autoscaling.mode keda). Must be unset with autoscaling.mode operator, where the operator sets the number (status.desiredReplicas)'),
  autoscaling: AutoscalingSchema.optional()
    .describe('scale the relay on its queues (docs/adr/0009-autoscaling.md): by the operator itself (mode operator), or by KEDA through the scale subresource (mode keda). Scale-downs always drain first (scaleDown.policy Drain)'),
  image: z.object({
    repository: z.string().min(1).max(512).optional().describe('image repository; defaults to the operator\'s own image (one image runs both)'),
    tag: z.string().min(1).max(128).regex(/^[\w][\w.-]{0,127}$/, { message: 'not an image tag' }).optional().describe('image tag; defaults to the operator\'s own tag'),
    digest: z.string().regex(/^sha256:[a-f0-9]{64}$/, { message: 'not a sha256 digest' }).optional().describe('image digest (sha256:...); pins the image, with or without a tag'),
    pullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional().describe('image pull policy; defaults to the Kubernetes default'),
  }).optional().describe('relay image; unset fields come from the operator\'s own image'),
  imagePullSecrets: z.array(z.object({ name: secretName.describe('Secret name') }).describe('a docker-registry Secret'))
    .max(16).optional().describe('Secrets used to pull the image'),
  relayNetworks: z.array(cidr.describe('a client network (CIDR) allowed to relay without AUTH')).max(256).default([])
    .describe('client networks allowed to relay without AUTH; empty means none (clients must AUTH), never an open relay'),
  auth: z.object({
    usersSecretRef: secretKeyRef('"user:bcrypt-hash" lines', 'users').describe('Secret key holding the SMTP AUTH users file'),
    requireTLS: z.boolean().default(true).describe('offer AUTH only over TLS (RFC 4954 §4); needs tls.secretRef unless set to false'),
  }).optional().describe('SMTP AUTH (PLAIN/LOGIN) for clients'),
  tls: z.object({
    secretRef: z.object({ name: secretName.describe('name of a kubernetes.io/tls Secret (keys tls.crt and tls.key), e.g. from cert-manager') })
      .describe('the certificate Secret'),
  }).optional().describe('STARTTLS for clients'),
  senderVerification: z.object({
    spf: z.object({
      enabled: z.boolean().default(false).describe('check the SPF record (RFC 7208) of each MAIL FROM (and HELO) domain'),
      policy: z.enum(['reject', 'tag', 'record']).default('reject')
        .describe('reject: 550 5.7.23 on fail, 451 4.7.24 on temperror; tag: Authentication-Results header only; record: metric and log only'),
      skipTrusted: z.boolean().default(true).describe('skip the check for clients in relayNetworks and authenticated clients'),
    }).prefault({}).describe('SPF check of inbound senders; a slow or hostile DNS delays only its own session (docs/adr/0004)'),
  }).prefault({}).describe('verification of inbound senders'),
  delivery: DeliverySchema,
  maxMessageSize: quantity.default('25Mi').describe('largest message accepted (SIZE, RFC 1870), as a quantity'),
  spool: z.object({
    size: quantity.default('10Gi').describe('size of each replica\'s spool volume (immutable)'),
    storageClassName: z.string().min(1).max(253).regex(DNS_SUBDOMAIN, { message: 'not a StorageClass name' }).optional()
      .describe('StorageClass of the spool volumes (immutable); defaults to the cluster default'),
  }).prefault({}).describe('the durable queue: one PersistentVolumeClaim per replica'),
  workers: z.number().int().min(1).max(64).optional()
    .describe('relay processes per pod, each with its own share of the SMTP sessions and a spool shard on the pod\'s volume (docs/adr/0007-workers.md); default: the container\'s CPU limit rounded up, or 1 without one'),
  resources: z.object({
    limits: z.record(z.string().max(253), resourceQuantity).optional().describe('resource limits (cpu, memory, ephemeral-storage)'),
    requests: z.record(z.string().max(253), resourceQuantity).optional().describe('resource requests (cpu, memory, ephemeral-storage)'),
  }).superRefine((r, ctx) => {
    // core/v1 validation: a request may not exceed its limit.
    for (const [name, limit] of Object.entries(r.limits ?? {})) {
      const request = r.requests?.[name];
      if (request === undefined) continue;
      const [req, lim] = [parseQuantity(String(request)), parseQuantity(String(limit))];
      if (req !== null && lim !== null && req > lim) ctx.addIssue({ code: 'custom', message: `must be less than or equal to ${name} limit of ${limit}`, path: ['requests', name], params: { reason: 'InvalidValue' } });
    }
  }).optional().describe('relay container resources; default requests cpu 100m, memory 128Mi and limits memory 512Mi'),
  nodeSelector: labelMap('node labels the relay pods must run on'),
  tolerations: z.array(z.object({
    key: z.string().max(317).optional().describe('taint key; empty with operator Exists matches every taint'),
    operator: z.enum(['Exists', 'Equal']).optional().describe('Exists or Equal (default Equal)'),
    value: z.string().max(63).optional().describe('taint value for Equal'),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional().describe('taint effect to match; empty matches all'),
    tolerationSeconds: z.number().int().optional().describe('for NoExecute: how long the pod stays bound after the taint appears'),
  }).superRefine((t, ctx) => {
    // core/v1 validation: operator Exists takes no value.
    if (t.operator === 'Exists' && t.value !== undefined && t.value !== '') ctx.addIssue({ code: 'custom', message: 'must be empty when operator is Exists', path: ['value'], params: { reason: 'InvalidCombination' } });
  }).describe('a toleration (core/v1 Toleration)')).max(64).optional().describe('tolerations of the relay pods'),
  affinity: (z.looseObject({}).meta({ 'x-kubernetes-preserve-unknown-fields': true, description: 'core/v1 Affinity of the relay pods, passed through unchanged' }) as unknown as z.ZodType<V1Affinity, V1Affinity>)
    .optional(),
  topologySpreadConstraints: z.array(z.object({
    maxSkew: z.number().int().min(1).describe('largest allowed difference in pod count between domains'),
    topologyKey: z.string().min(1).max(317).describe('node label that defines a domain, e.g. topology.kubernetes.io/zone'),
    whenUnsatisfiable: z.enum(['DoNotSchedule', 'ScheduleAnyway']).describe('what the scheduler does when the skew cannot be met'),
    labelSelector: LabelSelectorSchema.optional().describe('pods counted; defaults to this MailRelay\'s pods'),
    minDomains: z.number().int().min(1).optional().describe('minimum number of eligible domains (DoNotSchedule only)'),
    matchLabelKeys: z.array(z.string().max(317).describe('a pod label key')).max(16).optional().describe('pod label keys whose values further restrict the pods counted'),
    nodeAffinityPolicy: z.enum(['Honor', 'Ignore']).optional().describe('whether nodeAffinity/nodeSelector limit the domains'),
    nodeTaintsPolicy: z.enum(['Honor', 'Ignore']).optional().describe('whether node taints limit the domains'),
  }).describe('a core/v1 TopologySpreadConstraint')).max(8).optional()
    .describe('how relay pods spread over nodes and zones; default: spread over hostnames and zones, ScheduleAnyway'),
  priorityClassName: z.string().min(1).max(253).optional().describe('PriorityClass of the relay pods'),
  podAnnotations: stringMap('extra annotations on the relay pods'),
  podLabels: labelMap('extra labels on the relay pods (app.kubernetes.io/* keys are reserved)'),
  monitoring: z.object({
    serviceMonitor: z.object({
      enabled: z.boolean().default(true).describe('create a ServiceMonitor when the monitoring.coreos.com CRDs are installed'),
      interval: duration.optional().describe('scrape interval; defaults to Prometheus\' own'),
      labels: stringMap('extra labels on the ServiceMonitor, e.g. the release label a Prometheus selects on'),
    }).prefault({}).describe('Prometheus Operator ServiceMonitor for the relay metrics'),
    prometheusRule: z.object({
      enabled: z.boolean().default(false).describe('create a per-relay PrometheusRule with the relay alerts (off by default: the chart\'s PrometheusRule already covers every relay, and both would page twice)'),
      labels: stringMap('extra labels on the PrometheusRule, e.g. the label a Prometheus ruleSelector selects on'),
    }).prefault({}).describe('Prometheus Operator alerting rules for this relay'),
  }).prefault({}).describe('Prometheus Operator integration'),
  networkPolicy: z.object({
    enabled: z.boolean().default(false).describe('create a NetworkPolicy for the relay pods'),
    allowedClients: z.array(NetworkPeerSchema).max(64).default([])
      .describe('who may connect to SMTP; empty means pods in the same namespace'),
    metricsFrom: z.array(NetworkPeerSchema).max(64).optional()
      .describe('who may reach the metrics/health port; default any pod in the cluster (Prometheus, the operator)'),
  }).prefault({}).describe('ingress to SMTP only from allowed clients; egress to SMTP ports and DNS only (plus HTTPS 443 for MTA-STS policies in mode mx)'),
  service: z.object({
    type: z.enum(['ClusterIP', 'LoadBalancer', 'NodePort']).default('ClusterIP').describe('type of the client Service'),
    port: z.number().int().min(1).max(65535).default(25).describe('SMTP port of the client Service (forwarded to the relay\'s 2525)'),
    annotations: stringMap('annotations on the client Service (e.g. for a cloud load balancer)'),
    externalTrafficPolicy: z.enum(['Cluster', 'Local']).optional()
      .describe('Local keeps client source addresses (needed for relayNetworks) on LoadBalancer and NodePort Services'),
    loadBalancerSourceRanges: z.array(networkCidr.describe('a client network')).max(64).optional()
      .describe('client networks a LoadBalancer accepts (LoadBalancer only)'),
    proxyProtocol: z.object({
      trustedNetworks: z.array(cidr.describe('a network the load balancer connects from')).min(1).max(64)
        .describe('addresses the relay sees the load balancer connect from (its subnets, or the node network when traffic is SNATed); connections from them must start with a PROXY header, and a header from anywhere else is refused'),
    }).optional().describe('PROXY protocol v1/v2 from the load balancer in front of the client Service (e.g. an AWS NLB with proxy protocol v2, HAProxy send-proxy), so relayNetworks, rate limits and Received headers see the client\'s address instead of the balancer\'s; the balancer must be set to send it (usually a Service annotation)'),
  }).prefault({}).describe('the client Service clients send mail to'),
  greetingDelay: duration.optional()
    .describe('pause before the SMTP greeting for clients outside relayNetworks, refusing those that talk first (RFC 5321 §4.3.1 early talkers, mostly spam bots); for a relay reachable from the internet. Unset greets at once; clients on relayNetworks never wait'),
  drainTimeout: duration.default('60s')
    .describe('on shutdown, how long a relay keeps delivering its queue before it exits (the rest stays on its volume)'),
  terminationGracePeriodSeconds: z.number().int().min(1).max(86400).optional()
    .describe('pod termination grace period; defaults to drainTimeout + 30s, and must exceed drainTimeout'),
  podDisruptionBudget: z.object({
    enabled: z.boolean().default(true).describe('create a PodDisruptionBudget'),
    maxUnavailable: z.number().int().min(1).default(1).describe('relay pods that voluntary disruptions (node drains) may take down at once'),
  }).prefault({}).describe('limits voluntary disruptions'),
  scaleDown: z.object({
    policy: z.enum(['Drain', 'Immediate']).default('Drain')
      .describe('Drain: a pod removed by a scale-down first delivers its whole queue (see docs/adr/0003); Immediate: remove at once, leaving any queue on the retained volume'),
    timeout: duration.optional().describe('give up draining after this long and remove the pod anyway (its volume is retained); unset waits until the queue is empty'),
  }).prefault({}).describe('how replicas removed by a scale-down hand back their spooled mail'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info').describe('relay log level'),
}).describe('the desired state of a mail relay');

/** metav1.Condition, as the Kubernetes API conventions define it. */
export const ConditionSchema = z.object({
  type: z.string().min(1).max(316).regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/).describe('condition type: Ready, Progressing or Degraded'),
  status: z.enum(['True', 'False', 'Unknown']).describe('True, False or Unknown'),
  observedGeneration: z.number().int().min(0).optional().describe('the .metadata.generation the condition was computed from'),
  lastTransitionTime: z.string().describe('when status last changed (RFC 3339)'),
  reason: z.string().min(1).max(1024).regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/).describe('CamelCase reason for the last transition'),
  message: z.string().max(32768).describe('human-readable details'),
}).describe('one aspect of the relay\'s state');

/** The observed state of a MailRelay (written by the operator only). */
export const MailRelayStatusSchema = z.object({
  observedGeneration: z.number().int().min(0).optional().describe('the .metadata.generation last reconciled'),
  replicas: z.number().int().min(0).optional().describe('relay pods that exist (scale subresource)'),
  readyReplicas: z.number().int().min(0).optional().describe('relay pods that are ready to accept mail'),
  updatedReplicas: z.number().int().min(0).optional().describe('relay pods running the current configuration'),
  selector: z.string().optional().describe('label selector of the relay pods (scale subresource, HPA)'),
  configHash: z.string().optional().describe('sha256 of the rendered relay config and the referenced Secrets\' data'),
  smarthost: z.string().optional().describe('host:port mail is relayed to (mode smarthost)'),
  desiredReplicas: z.number().int().min(0).optional().describe('relay pods the operator aims for: spec.replicas, or the autoscaler\'s choice'),
  queue: z.object({
    messages: z.number().int().min(0).describe('messages in the spools of the pods that answered'),
    queued: z.number().int().min(0).describe('of those, messages due or being delivered'),
    deferred: z.number().int().min(0).describe('of those, messages waiting for a retry'),
    oldestMessageTime: z.string().optional().describe('arrival time of the oldest message in any spool (RFC 3339); the Oldest column shows its age'),
    oldestQueuedMessageTime: z.string().optional().describe('arrival time of the oldest queued (not deferred) message: how far delivery is behind'),
    pods: z.number().int().min(0).describe('relay pods whose /status was read'),
    unreachablePods: z.array(z.string().describe('a pod name')).optional().describe('running relay pods whose /status could not be read'),
  }).optional().describe('the relay\'s queues, summed over its pods (each pod\'s GET /status)'),
  autoscaling: z.object({
    currentReplicas: z.number().int().min(0).describe('relay pods the autoscaler had chosen before its last decision'),
    desiredReplicas: z.number().int().min(0).describe('relay pods it chose'),
    reason: z.string().min(1).max(64).describe('why (CamelCase): QueueAboveTarget, OldestAboveTarget, SpoolFull, QueueBelowTarget, WithinTarget, ... (docs/crd.md)'),
    message: z.string().max(4096).describe('the figures behind the decision'),
    lastScaleTime: z.string().optional().describe('when it last changed the replicas (RFC 3339)'),
    belowTargetSince: z.string().optional().describe('since when the queues have stayed well below the targets (the scale-down window)'),
    aboveTargetSince: z.string().optional().describe('since when a target has been exceeded (the scale-up window)'),
    podDeliveryRate: z.number().min(0).optional().describe('messages per second one pod was seen to deliver with a backlog: a scale-down must leave enough pods for the inflow at half of it'),
  }).optional().describe('the operator\'s autoscaler (autoscaling.mode operator)'),
  scaleDown: z.object({
    startedAt: z.string().describe('when the current scale-down started draining (RFC 3339)'),
    drainingOrdinals: z.array(z.number().int().min(0).describe('a pod ordinal')).describe('pod ordinals draining before removal'),
    queuedMessages: z.number().int().min(0).optional().describe('messages still spooled on the draining pods, when known'),
  }).optional().describe('a scale-down in progress: pods that must deliver their queue before they are removed'),
  conditions: z.array(ConditionSchema).optional().describe('Ready, Progressing and Degraded (docs/crd.md)'),
}).describe('the observed state of the mail relay');

/** The spec as a user writes it: every defaulted field optional. */
export type MailRelaySpec = z.input<typeof MailRelaySpecSchema>;
/** The spec with every default filled in (what withDefaults returns). */
export type MailRelaySpecDefaulted = z.output<typeof MailRelaySpecSchema>;
/** The status subresource. */
export type MailRelayStatus = z.output<typeof MailRelayStatusSchema>;
/** One status condition (metav1.Condition). */
export type Condition = z.output<typeof ConditionSchema>;
/** spec.autoscaling with its defaults. */
export type AutoscalingSpec = z.output<typeof AutoscalingSchema>;
/** A NetworkPolicy peer as the spec takes it. */
export type NetworkPeer = z.output<typeof NetworkPeerSchema>;
