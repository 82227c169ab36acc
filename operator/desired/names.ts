// Names of a MailRelay's children, in one place: the controller looks children up by
// these names and the ADR's PVC names (spool-<name>-<ordinal>) follow from them.
import type { MailRelay } from '../api/mailrelay.ts';

/** Name of the volumeClaimTemplate; a replica's PVC is spool-<statefulset>-<ordinal>. */
export const SPOOL_VOLUME = 'spool';

/** The names of every child of a MailRelay. */
export interface ChildNames {
  /** StatefulSet (pods are <name>-<ordinal>). */
  statefulSet: string;
  /** Headless Service that governs the StatefulSet. */
  headlessService: string;
  /** Client Service clients send mail to. */
  service: string;
  /** ConfigMap with relay.yaml. */
  configMap: string;
  /** PodDisruptionBudget. */
  podDisruptionBudget: string;
  /** NetworkPolicy. */
  networkPolicy: string;
  /** ServiceMonitor. */
  serviceMonitor: string;
  /** KEDA ScaledObject (autoscaling.mode keda). */
  scaledObject: string;
  /** PrometheusRule. */
  prometheusRule: string;
  /** Secret with the /drain bearer token (created by the controller, never rotated; ADR 0003 R2). */
  drainTokenSecret: string;
}

/** Suffix of the drain-token Secret's name: `<MailRelay name>-drain-token`. */
export const DRAIN_TOKEN_SECRET_SUFFIX = '-drain-token';

/** Children's names, all derived from the MailRelay's name. */
export function childNames(mr: Pick<MailRelay, 'metadata'>): ChildNames {
  const n = mr.metadata.name;
  return {
    statefulSet: n,
    headlessService: `${n}-headless`,
    service: n,
    configMap: `${n}-config`,
    podDisruptionBudget: n,
    networkPolicy: n,
    serviceMonitor: n,
    scaledObject: n,
    prometheusRule: n,
    drainTokenSecret: `${n}${DRAIN_TOKEN_SECRET_SUFFIX}`,
  };
}

/** Name of the spool PVC of one replica. */
export function spoolClaimName(mr: Pick<MailRelay, 'metadata'>, ordinal: number): string {
  return `${SPOOL_VOLUME}-${childNames(mr).statefulSet}-${ordinal}`;
}
