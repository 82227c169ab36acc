// Reading the CA bundles outbound TLS trusts (delivery.smarthost.caFile,
// delivery.extraCaFile): once, at start, so a missing or empty file stops the relay with
// a message naming the config field, instead of every delivery failing later.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Reads a PEM bundle; throws naming `field` if it cannot be read or holds no certificate. */
export function readCaBundle(file: string, field: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${field}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const certs = text.match(PEM_CERT) ?? [];
  if (certs.length === 0) throw new Error(`${field}: ${file} holds no PEM certificate`);
  return certs.join('\n');
}

/**
 * Node's `ca` option replaces its default store, so extra CAs go in together with it
 * (Mozilla's list bundled with Node; NODE_EXTRA_CA_CERTS is not part of this list).
 */
export function withDefaultCas(extra: string): string[] {
  return [...tls.rootCertificates, extra];
}
