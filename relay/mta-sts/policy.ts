// PURE: MTA-STS (RFC 8461) discovery record and policy parsing, and MX host matching.
// Written here rather than taken from mailauth's lib/mta-sts.js, whose "*.example.com"
// matches any depth of subdomain (RFC 8461 §4.1 allows exactly one label) and whose
// parser accepts a policy without a version line (see docs/adr/0006-outbound-tls-trust.md).

/** Policy modes (RFC 8461 §5). */
export type StsMode = 'enforce' | 'testing' | 'none';

/** A policy as fetched from https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.2). */
export interface StsPolicy {
  /** The TXT record's id the policy was fetched under (RFC 8461 §3.1). */
  id: string;
  mode: StsMode;
  /** Seconds the policy may be cached from its fetch. */
  maxAge: number;
  /** MX patterns, lower case: "mx.example.com" or "*.example.com". */
  mx: string[];
}

/** RFC 8461 §3.2: max_age is at most 31557600 seconds (a year). */
export const MAX_MAX_AGE = 31_557_600;
/** Largest policy body read; RFC 8461 §3.2 policies are a few lines, 64 KiB is what senders commonly allow. */
export const MAX_POLICY_BYTES = 64 * 1024;

/** What the `_mta-sts.<domain>` TXT records say. */
export type StsRecord =
  | { kind: 'policy'; id: string }
  | { kind: 'none'; why: string };

/**
 * Reads the TXT records of `_mta-sts.<domain>` (each a list of strings, as Node's
 * resolveTxt gives them). RFC 8461 §3.1: the strings of one record are concatenated;
 * records not starting with "v=STSv1" are discarded; anything but exactly one left, or
 * one that does not parse, means the domain has no (discoverable) policy.
 */
export function parseStsRecord(records: readonly (readonly string[])[]): StsRecord {
  const sts = records.map((r) => r.join('')).filter((r) => /^v=STSv1(;|$|\s)/.test(r));
  if (sts.length === 0) return { kind: 'none', why: 'no v=STSv1 TXT record' };
  if (sts.length > 1) return { kind: 'none', why: `${sts.length} v=STSv1 TXT records (exactly one is allowed)` };
  let id: string | undefined;
  for (const field of sts[0]!.split(';')) {
    const f = field.trim();
    if (f === '') continue;
    const eq = f.indexOf('=');
    if (eq <= 0) return { kind: 'none', why: `malformed field "${f}"` };
    const key = f.slice(0, eq);
    const value = f.slice(eq + 1);
    if (key === 'id') {
      // sts-id-value = 1*32(ALPHA / DIGIT)
      if (!/^[A-Za-z0-9]{1,32}$/.test(value)) return { kind: 'none', why: `invalid id "${value}"` };
      id ??= value;
    }
  }
  if (id === undefined) return { kind: 'none', why: 'no id field' };
  return { kind: 'policy', id };
}

const MODES: readonly string[] = ['enforce', 'testing', 'none'];
// sts-policy-mx-value = ["*."] Domain (RFC 5321 Domain: LDH labels)
const MX_PATTERN = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * Parses a policy body (RFC 8461 §3.2): "key: value" lines separated by LF or CRLF, with
 * version first; mode, max_age and, unless mode is none, at least one mx. Unknown keys
 * are ignored; a repeated single-valued key keeps its first value. Any error means the
 * policy is invalid (TLS-RPT sts-policy-invalid).
 */
export function parseStsPolicy(text: string, id: string): { policy: StsPolicy } | { error: string } {
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  const seen = new Map<string, string>();
  const mx: string[] = [];
  for (const [i, line] of lines.entries()) {
    const m = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (!m) return { error: `line ${i + 1} is not "key: value": ${JSON.stringify(line.slice(0, 80))}` };
    const key = m[1]!;
    const value = m[2]!;
    if (i === 0 && key !== 'version') return { error: 'the first line is not the version field' };
    if (key === 'mx') {
      const pattern = value.toLowerCase().replace(/\.$/, '');
      if (!MX_PATTERN.test(pattern)) return { error: `invalid mx pattern "${value}"` };
      if (!mx.includes(pattern)) mx.push(pattern);
    } else if (!seen.has(key)) {
      seen.set(key, value);
    }
  }
  const version = seen.get('version');
  if (version !== 'STSv1') return { error: version === undefined ? 'no version field' : `unsupported version "${version}"` };
  const mode = seen.get('mode');
  if (mode === undefined || !MODES.includes(mode)) return { error: mode === undefined ? 'no mode field' : `invalid mode "${mode}"` };
  const ageText = seen.get('max_age');
  if (ageText === undefined || !/^\d{1,10}$/.test(ageText)) return { error: ageText === undefined ? 'no max_age field' : `invalid max_age "${ageText}"` };
  if (mode !== 'none' && mx.length === 0) return { error: `mode ${mode} needs at least one mx pattern` };
  // Longer than a year is allowed on the wire (10 digits) but capped (RFC 8461 §3.2).
  return { policy: { id, mode: mode as StsMode, maxAge: Math.min(Number(ageText), MAX_MAX_AGE), mx } };
}

/**
 * True if an MX host name matches a policy pattern (RFC 8461 §4.1): exactly, or with
 * "*." standing for exactly one left-most label ("*.example.com" matches
 * "mx.example.com", not "example.com" nor "a.b.example.com"). Case-insensitive; a
 * trailing dot on the host is ignored.
 */
export function mxMatchesPattern(host: string, pattern: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  const p = pattern.toLowerCase();
  if (!p.startsWith('*.')) return h === p;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === p.slice(2);
}

/** True if the policy lists the MX host (RFC 8461 §4.1). */
export function mxAllowed(policy: Pick<StsPolicy, 'mx'>, host: string): boolean {
  return policy.mx.some((p) => mxMatchesPattern(host, p));
}
