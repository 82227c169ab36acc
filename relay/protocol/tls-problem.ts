// PURE: what went wrong with TLS on an outbound connection, as a value. The type is the
// RFC 8460 §4.3 result type (what a TLS-RPT report would say); the reason is the text the
// log line and the recorded reply carry, naming the host and the cause in plain words.

/** RFC 8460 §4.3.1 negotiation failure types (TLS-RPT result types). */
export type TlsFailureType =
  | 'starttls-not-supported'
  | 'certificate-host-mismatch'
  | 'certificate-expired'
  | 'certificate-not-trusted'
  | 'validation-failure';

/** A TLS failure: its RFC 8460 type and a human-readable reason naming the host. */
export interface TlsProblem {
  type: TlsFailureType;
  reason: string;
}

// OpenSSL's X509_verify_cert_error_string() texts for the codes Node reports in
// `authorizationError`: without rejectUnauthorized Node keeps only the code.
const CHAIN_ERRORS: Record<string, { type: TlsFailureType; text: string }> = {
  CERT_HAS_EXPIRED: { type: 'certificate-expired', text: 'certificate has expired' },
  CERT_NOT_YET_VALID: { type: 'validation-failure', text: 'certificate is not yet valid' },
  DEPTH_ZERO_SELF_SIGNED_CERT: { type: 'certificate-not-trusted', text: 'self-signed certificate' },
  SELF_SIGNED_CERT_IN_CHAIN: { type: 'certificate-not-trusted', text: 'self-signed certificate in certificate chain' },
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: { type: 'certificate-not-trusted', text: 'unable to verify the first certificate' },
  UNABLE_TO_GET_ISSUER_CERT: { type: 'certificate-not-trusted', text: 'unable to get issuer certificate' },
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: { type: 'certificate-not-trusted', text: 'unable to get local issuer certificate' },
  CERT_UNTRUSTED: { type: 'certificate-not-trusted', text: 'certificate not trusted' },
  CERT_REJECTED: { type: 'certificate-not-trusted', text: 'certificate rejected' },
  INVALID_CA: { type: 'certificate-not-trusted', text: 'invalid CA certificate' },
  CERT_CHAIN_TOO_LONG: { type: 'certificate-not-trusted', text: 'certificate chain too long' },
  CERT_SIGNATURE_FAILURE: { type: 'validation-failure', text: 'certificate signature failure' },
  CERT_REVOKED: { type: 'validation-failure', text: 'certificate revoked' },
  INVALID_PURPOSE: { type: 'validation-failure', text: 'unsupported certificate purpose' },
};

const TYPE_WORDS: Record<TlsFailureType, string> = {
  'starttls-not-supported': 'STARTTLS not offered',
  'certificate-host-mismatch': 'hostname mismatch',
  'certificate-expired': 'certificate has expired',
  'certificate-not-trusted': 'certificate not trusted',
  'validation-failure': 'certificate not valid',
};

/**
 * The problem for a certificate that failed verification. `code` is Node's error code
 * (`authorizationError`, or `err.code` of a refused handshake); `detail` is the
 * verification error's own text when there is one (e.g. which names the certificate has).
 */
export function certificateProblem(identity: string, code: string | undefined, detail?: string): TlsProblem {
  const prefix = `certificate verification failed for ${identity}`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return { type: 'certificate-host-mismatch', reason: `${prefix}: hostname mismatch${detail ? ` (${detail})` : ''}` };
  }
  const known = code ? CHAIN_ERRORS[code] : undefined;
  if (known) {
    const words = TYPE_WORDS[known.type];
    const reason = words === known.text ? `${prefix}: ${words}` : `${prefix}: ${words} (${known.text})`;
    return { type: known.type, reason };
  }
  return { type: 'validation-failure', reason: `${prefix}: ${detail ?? code ?? 'unknown error'}` };
}

/** The problem for a TLS handshake that failed for a reason other than the certificate (protocol versions, ciphers, garbage). */
export function handshakeProblem(identity: string, detail: string): TlsProblem {
  return { type: 'validation-failure', reason: `TLS handshake with ${identity} failed: ${detail}` };
}

/** True if a Node error code is a certificate verification failure (rather than a handshake or socket error). */
export function isCertificateError(code: string | undefined): boolean {
  return code === 'ERR_TLS_CERT_ALTNAME_INVALID' || (code !== undefined && code in CHAIN_ERRORS);
}

/** The problem when a session needs TLS but the server's EHLO has no STARTTLS. */
export const STARTTLS_NOT_OFFERED: TlsProblem = { type: 'starttls-not-supported', reason: 'the server does not offer STARTTLS' };
