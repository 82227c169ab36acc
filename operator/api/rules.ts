// Cross-field rules, each written twice side by side: as CEL for the CRD (the API
// server rejects a bad MailRelay at kubectl apply) and as TypeScript for
// validateMailRelay (so `mailrelay render` and the controller say the same thing
// offline). crd.ts attaches `cel` at `at`; validate runs `holds`. Keeping the pair in
// one row is what stops the two from drifting; rules.test.ts checks each row both ways.
import type { MailRelaySpecDefaulted } from './schema.ts';
import { parseDuration } from './duration.ts';

/** Where in the openAPIV3Schema a rule is attached: a dotted path from the root object. */
export type RuleScope = '' | 'spec' | 'spec.delivery' | 'spec.delivery.smarthost' | 'spec.delivery.retry' | 'spec.service' | 'spec.spool' | 'spec.scaleDown' | 'spec.autoscaling';

/** One cross-field rule. */
export interface CrossFieldRule {
  /** Short unique name of the rule. */
  id: string;
  /** Schema node the CEL rule is attached to (self = that node). */
  at: RuleScope;
  /** The CEL expression; true means valid. */
  cel: string;
  /** Error message, shared by the CRD and validateMailRelay. */
  message: string;
  /** CEL fieldPath (relative to `at`) of the field to blame. */
  fieldPath?: string;
  /** The spec field validateMailRelay blames (e.g. 'spec.delivery.smarthost'). */
  field: string;
  /** The same rule on the defaulted spec; absent for transition rules (they compare with the old object, which only the API server has). */
  holds?: (spec: MailRelaySpecDefaulted, name: string) => boolean;
}

const seconds = (d: string): number => parseDuration(d) ?? Number.NaN;

/** Every cross-field rule of the MailRelay API. */
export const CROSS_FIELD_RULES: readonly CrossFieldRule[] = [
  {
    id: 'name-fits',
    at: '',
    cel: "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 52",
    message: 'metadata.name must be a DNS-1035 label of at most 52 characters (pods are named <name>-<ordinal>, and the StatefulSet revision label must fit in 63)',
    // No fieldPath: the API server checks it against the schema, which has no metadata.name.
    field: 'metadata.name',
    holds: (_s, name) => /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name) && name.length <= 52,
  },
  {
    id: 'smarthost-required',
    at: 'spec.delivery',
    // has(self.mode): the API server also checks the schema's own default ({}) against the rule.
    cel: "!has(self.mode) || self.mode != 'smarthost' || has(self.smarthost)",
    message: 'delivery.mode smarthost needs delivery.smarthost.host',
    fieldPath: '.smarthost',
    field: 'spec.delivery.smarthost',
    holds: (s) => s.delivery.mode !== 'smarthost' || s.delivery.smarthost !== undefined,
  },
  {
    id: 'smarthost-forbidden-in-mx',
    at: 'spec.delivery',
    cel: "!has(self.mode) || self.mode != 'mx' || !has(self.smarthost)",
    message: 'delivery.smarthost must not be set when delivery.mode is mx',
    fieldPath: '.smarthost',
    field: 'spec.delivery.smarthost',
    holds: (s) => s.delivery.mode !== 'mx' || s.delivery.smarthost === undefined,
  },
  {
    id: 'smarthost-credentials-need-tls',
    at: 'spec.delivery.smarthost',
    cel: "!has(self.credentialsSecretRef) || self.tls == 'required' || self.tls == 'implicit'",
    message: 'smarthost credentials are only sent over TLS whose certificate the relay verified: delivery.smarthost.tls must be required or implicit',
    fieldPath: '.tls',
    field: 'spec.delivery.smarthost.tls',
    holds: (s) => s.delivery.smarthost?.credentialsSecretRef === undefined || ['required', 'implicit'].includes(s.delivery.smarthost.tls),
  },
  {
    id: 'smarthost-ca-or-skip-verify',
    at: 'spec.delivery.smarthost',
    cel: '!has(self.caSecretRef) || !self.insecureSkipVerify',
    message: 'delivery.smarthost.caSecretRef has no effect with insecureSkipVerify: true (nothing is verified); set one or the other',
    fieldPath: '.insecureSkipVerify',
    field: 'spec.delivery.smarthost.insecureSkipVerify',
    holds: (s) => s.delivery.smarthost?.caSecretRef === undefined || !s.delivery.smarthost.insecureSkipVerify,
  },
  {
    id: 'max-age-covers-schedule',
    at: 'spec.delivery.retry',
    cel: '!has(self.maxAge) || !has(self.schedule) || duration(self.maxAge) >= duration(self.schedule[size(self.schedule) - 1])',
    message: 'delivery.retry.maxAge must be at least the last delay of delivery.retry.schedule',
    fieldPath: '.maxAge',
    field: 'spec.delivery.retry.maxAge',
    holds: (s) => seconds(s.delivery.retry.maxAge) >= seconds(s.delivery.retry.schedule.at(-1) ?? '0s'),
  },
  {
    id: 'auth-needs-tls',
    at: 'spec',
    cel: '!has(self.auth) || has(self.tls) || !self.auth.requireTLS',
    message: 'auth needs tls.secretRef, since AUTH is only offered over TLS (or set auth.requireTLS: false)',
    fieldPath: '.auth',
    field: 'spec.auth',
    holds: (s) => s.auth === undefined || s.tls !== undefined || !s.auth.requireTLS,
  },
  {
    id: 'grace-exceeds-drain',
    at: 'spec',
    // getSeconds() truncates, which keeps ">" exact for a whole-second grace period; it also
    // keeps the rule's estimated cost low (a string built from an int has no known bound).
    cel: '!has(self.terminationGracePeriodSeconds) || self.terminationGracePeriodSeconds > duration(self.drainTimeout).getSeconds()',
    message: 'terminationGracePeriodSeconds must exceed drainTimeout, or the kubelet kills the relay in the middle of its drain',
    fieldPath: '.terminationGracePeriodSeconds',
    field: 'spec.terminationGracePeriodSeconds',
    holds: (s) => s.terminationGracePeriodSeconds === undefined || s.terminationGracePeriodSeconds > seconds(s.drainTimeout),
  },
  {
    id: 'traffic-policy-needs-external',
    at: 'spec.service',
    cel: "!has(self.externalTrafficPolicy) || self.type != 'ClusterIP'",
    message: 'service.externalTrafficPolicy needs service.type LoadBalancer or NodePort',
    fieldPath: '.externalTrafficPolicy',
    field: 'spec.service.externalTrafficPolicy',
    holds: (s) => s.service.externalTrafficPolicy === undefined || s.service.type !== 'ClusterIP',
  },
  {
    id: 'source-ranges-need-loadbalancer',
    at: 'spec.service',
    cel: "!has(self.loadBalancerSourceRanges) || self.type == 'LoadBalancer'",
    message: 'service.loadBalancerSourceRanges needs service.type LoadBalancer',
    fieldPath: '.loadBalancerSourceRanges',
    field: 'spec.service.loadBalancerSourceRanges',
    holds: (s) => s.service.loadBalancerSourceRanges === undefined || s.service.type === 'LoadBalancer',
  },
  {
    id: 'timeout-needs-drain',
    at: 'spec.scaleDown',
    cel: "!has(self.timeout) || self.policy == 'Drain'",
    message: 'scaleDown.timeout only applies to scaleDown.policy Drain',
    fieldPath: '.timeout',
    field: 'spec.scaleDown.timeout',
    holds: (s) => s.scaleDown.timeout === undefined || s.scaleDown.policy === 'Drain',
  },
  {
    id: 'autoscaling-min-le-max',
    at: 'spec.autoscaling',
    cel: '!has(self.minReplicas) || self.minReplicas <= self.maxReplicas',
    message: 'autoscaling.minReplicas must not exceed autoscaling.maxReplicas',
    fieldPath: '.minReplicas',
    field: 'spec.autoscaling.minReplicas',
    holds: (s) => s.autoscaling === undefined || s.autoscaling.minReplicas <= s.autoscaling.maxReplicas,
  },
  {
    // One owner of the replica count. With mode operator the operator chooses it, so a
    // spec.replicas (from a manifest, kubectl scale or an HPA through the scale
    // subresource, which writes spec.replicas) would fight it: refused. With mode keda,
    // KEDA's HPA owns spec.replicas and the operator only drains what it removes.
    id: 'replicas-or-autoscaling',
    at: 'spec',
    cel: "!has(self.autoscaling) || !has(self.replicas) || (has(self.autoscaling.mode) && self.autoscaling.mode == 'keda')",
    message: 'spec.replicas must be unset while autoscaling.mode is operator: the operator sets the replicas between autoscaling.minReplicas and maxReplicas (kubectl scale and an HPA are refused for the same reason); remove spec.replicas, or spec.autoscaling to scale by hand',
    fieldPath: '.replicas',
    field: 'spec.replicas',
    holds: (s) => s.autoscaling === undefined || s.replicas === undefined || s.autoscaling.mode === 'keda',
  },
  {
    // Autoscaling scales down routinely: only through drain-and-hold (ADR 0003), never Immediate.
    id: 'autoscaling-drains',
    at: 'spec',
    cel: "!has(self.autoscaling) || !has(self.scaleDown) || !has(self.scaleDown.policy) || self.scaleDown.policy == 'Drain'",
    message: 'autoscaling scales down only through the drain (docs/adr/0003): scaleDown.policy must be Drain',
    fieldPath: '.scaleDown',
    field: 'spec.scaleDown.policy',
    holds: (s) => s.autoscaling === undefined || s.scaleDown.policy === 'Drain',
  },
  {
    id: 'keda-needs-prometheus',
    at: 'spec.autoscaling',
    cel: "!has(self.mode) || self.mode != 'keda' || has(self.keda)",
    message: 'autoscaling.mode keda needs autoscaling.keda.serverAddress (the Prometheus the ScaledObject queries)',
    fieldPath: '.keda',
    field: 'spec.autoscaling.keda',
    holds: (s) => s.autoscaling === undefined || s.autoscaling.mode !== 'keda' || s.autoscaling.keda !== undefined,
  },
  {
    id: 'keda-settings-need-keda-mode',
    at: 'spec.autoscaling',
    cel: "!has(self.keda) || (has(self.mode) && self.mode == 'keda')",
    message: 'autoscaling.keda applies to autoscaling.mode keda only',
    fieldPath: '.keda',
    field: 'spec.autoscaling.keda',
    holds: (s) => s.autoscaling?.keda === undefined || s.autoscaling.mode === 'keda',
  },
  {
    // volumeClaimTemplates of a StatefulSet are immutable; until the controller can
    // expand PVCs and re-create the StatefulSet (docs/crd.md), so is the spool.
    id: 'spool-size-immutable',
    at: 'spec.spool',
    cel: "(has(self.size) ? self.size : '') == (has(oldSelf.size) ? oldSelf.size : '')",
    message: 'spool.size is immutable (StatefulSet volumeClaimTemplates cannot change)',
    fieldPath: '.size',
    field: 'spec.spool.size',
  },
  {
    id: 'storage-class-immutable',
    at: 'spec.spool',
    cel: "(has(self.storageClassName) ? self.storageClassName : '') == (has(oldSelf.storageClassName) ? oldSelf.storageClassName : '')",
    message: 'spool.storageClassName is immutable (StatefulSet volumeClaimTemplates cannot change)',
    fieldPath: '.storageClassName',
    field: 'spec.spool.storageClassName',
  },
];
