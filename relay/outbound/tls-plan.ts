// PURE: how one connection attempt does TLS, decided from the configuration and, for MX
// delivery, the recipient domain's MTA-STS policy: the TLS mode, what an unverified
// certificate means, the identity and trust anchors to check it against, and which
// TLS-RPT (RFC 8460) policy the outcome is counted under.
import type { SessionTlsPolicy, TlsVerifyMode } from '../protocol/client-session.ts';
import type { TlsFailureType } from '../protocol/tls-problem.ts';
import { type StsPolicy, mxAllowed } from '../mta-sts/policy.ts';
import type { TlsOutcome, TlsTrust } from './connection.ts';

/** The policy a TLS outcome is counted under (`policy` label of mailrelay_tls_sessions_total). */
export type TlsPolicyLabel = 'smarthost' | 'sts-enforce' | 'sts-testing' | 'no-policy';
/** What a TLS outcome counts as (`result` label): success, or an RFC 8460 §4.3.1 failure type. */
export type TlsReportResult = 'success' | TlsFailureType;

/** The TLS of one connection attempt. */
export interface TlsPlan {
  tls: SessionTlsPolicy;
  tlsVerify: TlsVerifyMode;
  trust: TlsTrust;
  label: TlsPolicyLabel;
  /** For the counters: success needs a verified certificate (else any established TLS). */
  needsVerified: boolean;
  /** MTA-STS testing: the host is not in the policy (reported, delivered anyway). */
  mxNotInPolicy?: boolean;
}

/** A host an enforced policy rules out, with the reason for the log and the DSN. */
export interface TlsRefusal {
  refuse: string;
}

/** The smarthost's TLS settings (relay config delivery.smarthost, with the CA file read). */
export interface SmarthostTls {
  host: string;
  tls: SessionTlsPolicy;
  serverName?: string;
  /** PEM CA bundle trusted instead of the default store. */
  ca?: string;
  insecureSkipVerify?: boolean;
}

/** MX delivery's TLS settings (relay config delivery.tls / tlsVerify / extraCaFile). */
export interface MxTls {
  tls: SessionTlsPolicy;
  /** Verify MX certificates under required/implicit. */
  verify: boolean;
  /** Trust anchors for MX hosts: the default store plus extra CAs, or undefined for the default store alone. */
  ca?: string[];
}

/**
 * The smarthost is a host we chose and usually hand credentials to: with `required` or
 * `implicit` its certificate must verify for the configured name (or serverName), unless
 * insecureSkipVerify says otherwise. `opportunistic` records the result; credentials
 * still need a verified certificate (client-session.ts mayAuthenticate).
 */
export function smarthostPlan(sh: SmarthostTls): TlsPlan {
  const tlsVerify: TlsVerifyMode = sh.insecureSkipVerify ? 'skip' : sh.tls === 'required' || sh.tls === 'implicit' ? 'enforce' : 'record';
  return {
    tls: sh.tls, tlsVerify, label: 'smarthost', needsVerified: tlsVerify !== 'skip',
    trust: { identity: sh.serverName ?? sh.host, ...(sh.ca !== undefined ? { ca: sh.ca } : {}) },
  };
}

/**
 * An MX host, under the domain's MTA-STS policy if it has one (RFC 8461 §5):
 * - enforce: only hosts the policy lists, over STARTTLS with a certificate valid for the
 *   MX name (RFC 8461 §4.2); anything else is refused or fails, and the mail is deferred;
 * - testing: as configured, but the outcome is counted as if enforced (TLS-RPT);
 * - none, or no policy: as configured (opportunistic TLS by default, RFC 7435).
 */
export function mxPlan(mx: MxTls, host: string, policy: StsPolicy | null): TlsPlan | TlsRefusal {
  const trust: TlsTrust = { identity: host, ...(mx.ca !== undefined ? { ca: mx.ca } : {}) };
  if (policy?.mode === 'enforce') {
    if (!mxAllowed(policy, host)) return { refuse: `MX host ${host} is not listed in the domain's MTA-STS policy (mode enforce, mx ${policy.mx.join(', ')})` };
    return { tls: mx.tls === 'implicit' ? 'implicit' : 'required', tlsVerify: 'enforce', trust, label: 'sts-enforce', needsVerified: true };
  }
  const tlsVerify: TlsVerifyMode = mx.verify && (mx.tls === 'required' || mx.tls === 'implicit') ? 'enforce' : 'record';
  if (policy?.mode === 'testing') {
    return {
      tls: mx.tls === 'none' ? 'opportunistic' : mx.tls, tlsVerify, trust, label: 'sts-testing', needsVerified: true,
      ...(mxAllowed(policy, host) ? {} : { mxNotInPolicy: true }),
    };
  }
  return { tls: mx.tls, tlsVerify, trust, label: 'no-policy', needsVerified: tlsVerify === 'enforce' };
}

/**
 * What one connection's TLS outcome counts as, or null when TLS was not in play (policy
 * `none`, or the connection failed before TLS could be tried).
 */
export function tlsReportResult(plan: TlsPlan, o: TlsOutcome): TlsReportResult | null {
  if (!o.wanted) return null;
  if (o.problem?.type === 'starttls-not-supported') return 'starttls-not-supported';
  if (!o.established) return o.problem ? o.problem.type : null;
  if (plan.needsVerified && !o.verified) return o.problem?.type ?? 'validation-failure';
  if (plan.mxNotInPolicy) return 'validation-failure';
  return 'success';
}
