// The public half of a DKIM key as the TXT record a domain publishes at
// <selector>._domainkey.<domain> (RFC 6376 §3.6.1).
import { createPublicKey, type KeyObject } from 'node:crypto';

/**
 * `v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo, base64>` for RSA (RFC 6376 §3.6.1), or
 * `v=DKIM1; k=ed25519; p=<the 32 raw key bytes, base64>` for Ed25519 (RFC 8463 §4.2).
 */
export function dkimDnsRecord(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  if (pub.asymmetricKeyType === 'ed25519') {
    const jwk = pub.export({ format: 'jwk' });
    return `v=DKIM1; k=ed25519; p=${Buffer.from(jwk.x ?? '', 'base64url').toString('base64')}`;
  }
  if (pub.asymmetricKeyType === 'rsa') {
    return `v=DKIM1; k=rsa; p=${pub.export({ format: 'der', type: 'spki' }).toString('base64')}`;
  }
  throw new Error(`no DKIM key record for a ${pub.asymmetricKeyType ?? 'unknown'} key`);
}
