// DKIM signing of outgoing mail (RFC 6376, RFC 8463): the signer, its DNS record, and the
// scheduler hook that signs each message once before its first delivery attempt.
export {
  DkimKeyError, DkimSigner, DkimUnsignableError, MIN_RSA_BITS, OVERSIGNED_HEADERS, SIGNED_HEADERS, loadDkimSigner,
  type DkimAlgorithm, type DkimConfig, type DkimSignerOptions,
} from './signer.ts';
export { dkimDnsRecord } from './record.ts';
export { dkimBodyFor, type DkimBodyForOptions } from './body-for.ts';
