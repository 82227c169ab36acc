// Throwaway certificates for TLS peers, made with the openssl CLI (installed by .ci/run)
// so no private key is ever committed: a self-signed one for STARTTLS peers that nobody
// verifies, and a test CA that issues leaf certificates with chosen SANs and validity
// dates (expired, not yet valid) for tests of certificate verification.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A PEM key and certificate pair. */
export interface TestCertificate {
  /** PEM private key. */
  key: string;
  /** PEM certificate. */
  cert: string;
}

/** What a leaf certificate is issued for. */
export interface LeafOptions {
  /** Subject CN (default: the first DNS name, else the first IP, else "leaf"). */
  commonName?: string;
  /** DNS subjectAltNames. */
  dns?: readonly string[];
  /** IP subjectAltNames. */
  ips?: readonly string[];
  /** Start of validity (default: one hour ago). */
  notBefore?: Date;
  /** End of validity (default: one day from now). */
  notAfter?: Date;
}

/** A test certificate authority that issues leaf certificates. */
export interface TestCa {
  /** PEM certificate of the CA (what a client is told to trust). */
  cert: string;
  /** Issues a leaf certificate signed by this CA; `cert` holds the leaf only (no chain). */
  issue(opts: LeafOptions): TestCertificate;
}

const OPENSSL_TIMEOUT = 30_000;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe', timeout: OPENSSL_TIMEOUT });
}

function withDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'peers-cert-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function sanList(o: LeafOptions): string {
  return [...(o.dns ?? []).map((d) => `DNS:${d}`), ...(o.ips ?? []).map((ip) => `IP:${ip}`)].join(',');
}

/** ASN.1 GeneralizedTime as `openssl ca -startdate/-enddate` takes it. */
function asn1Time(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

/** Creates a one-day self-signed P-256 certificate for `commonName` (SAN: that name, localhost, 127.0.0.1, ::1). */
export function makeTestCertificate(commonName = 'localhost'): TestCertificate {
  return makeSelfSigned({ commonName, dns: [commonName, 'localhost'], ips: ['127.0.0.1', '::1'] });
}

/** Creates a one-day self-signed P-256 certificate with exactly the given names (no CA vouches for it). */
export function makeSelfSigned(o: LeafOptions): TestCertificate {
  return withDir((dir) => {
    const cn = o.commonName ?? o.dns?.[0] ?? o.ips?.[0] ?? 'leaf';
    const san = sanList(o);
    openssl([
      'req', '-x509', ...EC_KEY, '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '1', '-subj', `/CN=${cn}`,
      ...(san ? ['-addext', `subjectAltName=${san}`] : []),
    ], dir);
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  });
}

/** Creates a test CA (P-256, valid for two days) named `name`. */
export function makeTestCa(name = 'mailrelay test CA'): TestCa {
  const { key, cert } = withDir((dir) => {
    openssl([
      'req', '-x509', ...EC_KEY, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ], dir);
    return { key: readFileSync(join(dir, 'ca.key'), 'utf8'), cert: readFileSync(join(dir, 'ca.crt'), 'utf8') };
  });
  let serial = 1;
  return {
    cert,
    issue(o: LeafOptions): TestCertificate {
      return withDir((dir) => {
        const cn = o.commonName ?? o.dns?.[0] ?? o.ips?.[0] ?? 'leaf';
        writeFileSync(join(dir, 'ca.key'), key);
        writeFileSync(join(dir, 'ca.crt'), cert);
        writeFileSync(join(dir, 'index.txt'), '');
        writeFileSync(join(dir, 'serial'), (serial++).toString(16).padStart(2, '0'));
        // `openssl ca` (rather than `x509 -req`) because it takes exact validity dates.
        writeFileSync(join(dir, 'ca.cnf'), [
          '[ ca ]', 'default_ca = test_ca', '[ test_ca ]', 'database = index.txt', 'new_certs_dir = .', 'serial = serial',
          'default_md = sha256', 'policy = any', 'unique_subject = no', '[ any ]', 'commonName = supplied', '',
        ].join('\n'));
        const san = sanList(o);
        writeFileSync(join(dir, 'ext.cnf'), [
          'basicConstraints = CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = serverAuth',
          ...(san ? [`subjectAltName = ${san}`] : []), '',
        ].join('\n'));
        openssl(['req', ...EC_KEY, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${cn}`], dir);
        const now = Date.now();
        openssl([
          'ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.crt', '-keyfile', 'ca.key', '-in', 'leaf.csr', '-out', 'leaf.crt', '-notext',
          '-extfile', 'ext.cnf',
          '-startdate', asn1Time(o.notBefore ?? new Date(now - 3600_000)), '-enddate', asn1Time(o.notAfter ?? new Date(now + 86_400_000)),
        ], dir);
        return { key: readFileSync(join(dir, 'leaf.key'), 'utf8'), cert: readFileSync(join(dir, 'leaf.crt'), 'utf8') };
      });
    },
  };
}
