// Where things are inside a relay pod: ports, the config file, the spool, and the
// files mounted from Secrets. The rendered relay.yaml (configmap.ts) and the pod spec
// (statefulset.ts) both read these, so a path cannot differ between the two.
import type { SecretRole } from '../api/inputs.ts';

/** SMTP listener port in the container (unprivileged; the client Service maps 25 to it). */
export const SMTP_PORT = 2525;
/** HTTP port for /metrics, /healthz, /readyz and /drain. */
export const HTTP_PORT = 9090;
/** Named container ports. */
export const SMTP_PORT_NAME = 'smtp';
/** Named container port of the HTTP server. */
export const METRICS_PORT_NAME = 'metrics';

/** Mount point of the projected config volume (ConfigMap + Secret keys). */
export const CONFIG_DIR = '/etc/mailrelay';
/** The ConfigMap key and file name of the relay config. */
export const CONFIG_KEY = 'relay.yaml';
/** The relay config file the relay is started with. */
export const CONFIG_FILE = `${CONFIG_DIR}/${CONFIG_KEY}`;
/** The spool directory, a PersistentVolume per replica. */
export const SPOOL_DIR = '/var/spool/mailrelay';
/** A writable scratch directory (the root filesystem is read-only). */
export const TMP_DIR = '/tmp';

/** Path of each Secret-backed file, relative to CONFIG_DIR. */
export const SECRET_FILE_PATHS: Readonly<Record<SecretRole, string>> = {
  tlsCert: 'tls/tls.crt',
  tlsKey: 'tls/tls.key',
  authUsers: 'secrets/auth/users',
  smarthostUsername: 'secrets/smarthost/username',
  smarthostPassword: 'secrets/smarthost/password',
  smarthostCa: 'secrets/smarthost-ca/ca.crt',
  dkimKey: 'secrets/dkim/private.key',
};

/** Absolute path of a Secret-backed file. */
export function secretFile(role: SecretRole): string {
  return `${CONFIG_DIR}/${SECRET_FILE_PATHS[role]}`;
}

/** Key of the drain token in the operator-created drain-token Secret (names.ts drainTokenSecret). */
export const DRAIN_TOKEN_KEY = 'token';
/** Path of the drain token file, relative to CONFIG_DIR (ADR 0003 R2). */
export const DRAIN_TOKEN_PATH = 'secrets/drain/token';
/** The relay's http.drainTokenFile: the drain-token Secret's key, mounted optional (absent until the operator creates it). */
export const DRAIN_TOKEN_FILE = `${CONFIG_DIR}/${DRAIN_TOKEN_PATH}`;

/** The image's entry point: node, and the mailrelay CLI it runs (the image contract). */
export const MAILRELAY_CLI = ['/nodejs/bin/node', '/app/bin/mailrelay.mjs'] as const;
/** Container args: run the relay with the mounted config (the image's entrypoint is MAILRELAY_CLI). */
export const RELAY_ARGS = ['relay', '--config', CONFIG_FILE] as const;
/**
 * The preStop hook's command: `mailrelay drain` (relay/main.ts) POSTs /drain to the local
 * relay and waits until it stops serving, or `timeoutSeconds` pass. An httpGet hook
 * cannot POST, hence exec; and the image has no shell, hence node by absolute path.
 */
export function drainCommand(timeoutSeconds: number): string[] {
  return [...MAILRELAY_CLI, 'drain', '--url', `http://127.0.0.1:${HTTP_PORT}`, '--timeout', String(timeoutSeconds)];
}
/** Seconds the drain command waits beyond drainTimeout, so it never gives up before the relay does. */
export const DRAIN_WAIT_MARGIN_SECONDS = 10;
/** Seconds added to drainTimeout for terminationGracePeriodSeconds: the preStop hook's start-up and the final exit. */
export const GRACE_MARGIN_SECONDS = 30;
/** UID and GID the relay runs as (distroless "nonroot"). */
export const RUN_AS_ID = 65532;
