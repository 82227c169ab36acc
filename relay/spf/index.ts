// SPF sender verification (RFC 7208): the DNS cache (dns.ts), one check (check.ts), the
// Authentication-Results field (auth-results.ts), and here the assembly from the
// `inbound.spf` config plus the PURE choice of which identities a transaction checks.
// What a result means for the SMTP reply is inbound policy (relay/inbound/policy.ts).
import type { RelayConfig } from '../config.ts';
import { SpfChecker } from './check.ts';
import type { SpfCheckRequest } from './check.ts';
import { SpfDns, nodeDnsBackend } from './dns.ts';
import type { DnsBackend } from './dns.ts';
import { TurnGate } from './turn-gate.ts';

export { SpfChecker, SPF_RESULTS } from './check.ts';
export type { SpfCheckRequest, SpfCheckResult, SpfIdentity, SpfResult } from './check.ts';
export { SpfDns, DnsLookupError, nodeDnsBackend } from './dns.ts';
export type { DnsAnswer, DnsBackend, SpfDnsStats } from './dns.ts';
export { buildAuthResultsHeader, claimsAuthservId } from './auth-results.ts';
export { TurnGate } from './turn-gate.ts';

/** Checks let through per event-loop turn when many start or wake at once (turn-gate.ts). */
const CHECKS_PER_TURN = 32;

/** The `inbound.spf` config section. */
export type SpfConfig = RelayConfig['inbound']['spf'];

/** A ready SPF verifier: the shared DNS cache and the checker using it. */
export interface SpfVerifier {
  dns: SpfDns;
  checker: SpfChecker;
}

/** Builds the verifier from config; `backend` replaces node:dns (tests), `now` the clock. */
export function createSpfVerifier(config: SpfConfig, opts: { hostname: string; backend?: DnsBackend; now?: () => number }): SpfVerifier {
  const dns = new SpfDns({
    backend: opts.backend ?? nodeDnsBackend({ servers: config.dnsServers, timeoutMs: config.dnsTimeoutMs }),
    timeoutMs: config.dnsTimeoutMs,
    cacheSize: config.cacheSize,
    maxTtlMs: config.cacheTtl * 1000,
    now: opts.now,
  });
  const checker = new SpfChecker({
    dns, budgetMs: config.checkBudgetMs, hostname: opts.hostname, maxQueries: config.maxQueriesPerCheck, now: opts.now,
    gate: new TurnGate(CHECKS_PER_TURN),
  });
  return { dns, checker };
}

/** RFC 7208 §2.3: a HELO identity is checked only when it is a domain name (not an address literal or a bare word). */
export function isCheckableHelo(helo: string): boolean {
  return /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(helo.replace(/\.$/, ''));
}

/** One identity to check, without the per-check fields (deadline, signal). */
export type SpfIdentityRequest = Omit<SpfCheckRequest, 'deadline' | 'signal'>;

/**
 * The identities one transaction checks (PURE). MAIL FROM always: the sender, or for the
 * null reverse-path postmaster@<HELO> (RFC 7208 §2.4). HELO too when asked and the
 * name is a domain (§2.3), unless the MAIL FROM check already is the HELO one.
 */
export function identitiesFor(f: { ip: string; sender: string; helo: string; checkHelo: boolean }): { mailfrom: SpfIdentityRequest; helo?: SpfIdentityRequest } {
  const heloId = `postmaster@${f.helo}`;
  const mailfrom: SpfIdentityRequest = { identity: 'mailfrom', ip: f.ip, sender: f.sender === '' ? heloId : f.sender, helo: f.helo };
  const helo: SpfIdentityRequest | undefined = f.checkHelo && f.sender !== '' && isCheckableHelo(f.helo)
    ? { identity: 'helo', ip: f.ip, sender: heloId, helo: f.helo }
    : undefined;
  return helo ? { mailfrom, helo } : { mailfrom };
}
