// Table tests of the per-attempt TLS plan: smarthost trust, MX delivery under each
// MTA-STS mode, and what each outcome counts as (RFC 8460 result types).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mxPlan, smarthostPlan, tlsReportResult, type TlsPlan } from './tls-plan.ts';
import type { StsPolicy } from '../mta-sts/policy.ts';
import type { TlsOutcome } from './connection.ts';

const sts = (mode: StsPolicy['mode']): StsPolicy => ({ id: '1', mode, maxAge: 86400, mx: ['mx1.example.test', '*.mx.example.test'] });

test('smarthost: required/implicit enforce verification; opportunistic records; insecureSkipVerify skips', () => {
  const cases: [Parameters<typeof smarthostPlan>[0], string][] = [
    [{ host: 'smtp.example.test', tls: 'required' }, 'required/enforce/smtp.example.test'],
    [{ host: 'smtp.example.test', tls: 'implicit' }, 'implicit/enforce/smtp.example.test'],
    [{ host: 'smtp.example.test', tls: 'opportunistic' }, 'opportunistic/record/smtp.example.test'],
    [{ host: '192.0.2.1', tls: 'required', serverName: 'smtp.example.test' }, 'required/enforce/smtp.example.test'],
    [{ host: 'smtp.example.test', tls: 'required', insecureSkipVerify: true }, 'required/skip/smtp.example.test'],
    [{ host: '192.0.2.1', tls: 'required' }, 'required/enforce/192.0.2.1'],
  ];
  for (const [sh, want] of cases) {
    const p = smarthostPlan(sh);
    assert.equal(`${p.tls}/${p.tlsVerify}/${p.trust.identity}`, want, JSON.stringify(sh));
    assert.equal(p.label, 'smarthost');
  }
  assert.equal(smarthostPlan({ host: 'a', tls: 'required', ca: 'PEM' }).trust.ca, 'PEM');
});

test('MX under MTA-STS (RFC 8461 §5): enforce requires listed hosts and verified STARTTLS; testing and none do not', () => {
  const mx = { tls: 'opportunistic' as const, verify: false, ca: ['CA'] };
  const show = (p: ReturnType<typeof mxPlan>) => ('refuse' in p ? 'refuse' : `${p.label}/${p.tls}/${p.tlsVerify}${p.mxNotInPolicy ? '/not-listed' : ''}`);
  const cases: [StsPolicy | null, string, string][] = [
    [null, 'mx1.example.test', 'no-policy/opportunistic/record'],
    [sts('none'), 'anything.test', 'no-policy/opportunistic/record'],
    [sts('enforce'), 'mx1.example.test', 'sts-enforce/required/enforce'],
    [sts('enforce'), 'a.mx.example.test', 'sts-enforce/required/enforce'],
    [sts('enforce'), 'a.b.mx.example.test', 'refuse'],
    [sts('enforce'), 'evil.test', 'refuse'],
    [sts('testing'), 'mx1.example.test', 'sts-testing/opportunistic/record'],
    [sts('testing'), 'evil.test', 'sts-testing/opportunistic/record/not-listed'],
  ];
  for (const [policy, host, want] of cases) assert.equal(show(mxPlan(mx, host, policy)), want, `${policy?.mode ?? 'no policy'} ${host}`);
  const p = mxPlan(mx, 'mx1.example.test', sts('enforce'));
  assert.ok(!('refuse' in p) && p.trust.identity === 'mx1.example.test' && p.trust.ca?.[0] === 'CA');
  const r = mxPlan(mx, 'evil.test', sts('enforce'));
  assert.ok('refuse' in r && /MX host evil\.test is not listed in the domain's MTA-STS policy/.test(r.refuse));
  // Configured MX verification (delivery.tlsVerify) applies under required/implicit only.
  assert.equal(show(mxPlan({ tls: 'required', verify: true }, 'mx.test', null)), 'no-policy/required/enforce');
  assert.equal(show(mxPlan({ tls: 'opportunistic', verify: true }, 'mx.test', null)), 'no-policy/opportunistic/record');
  assert.equal(show(mxPlan({ tls: 'none', verify: false }, 'mx1.example.test', sts('enforce'))), 'sts-enforce/required/enforce', 'enforce overrides tls none');
  assert.equal(show(mxPlan({ tls: 'none', verify: false }, 'mx1.example.test', sts('testing'))), 'sts-testing/opportunistic/record');
});

test('what a TLS outcome counts as', () => {
  const plan = (label: TlsPlan['label'], needsVerified: boolean, mxNotInPolicy = false): TlsPlan => ({
    tls: 'opportunistic', tlsVerify: 'record', trust: {}, label, needsVerified, ...(mxNotInPolicy ? { mxNotInPolicy } : {}),
  });
  const out = (o: Partial<TlsOutcome>): TlsOutcome => ({ wanted: true, established: false, verified: false, problem: null, ...o });
  const expired = { type: 'certificate-expired' as const, reason: 'x' };
  const cases: [TlsPlan, TlsOutcome, string | null][] = [
    [plan('no-policy', false), out({ wanted: false }), null],
    [plan('no-policy', false), out({}), null], // connection failed before TLS
    [plan('no-policy', false), out({ problem: { type: 'starttls-not-supported', reason: 'x' } }), 'starttls-not-supported'],
    [plan('no-policy', false), out({ established: true, problem: expired }), 'success'], // opportunistic: encrypted is success
    [plan('sts-testing', true), out({ established: true, problem: expired }), 'certificate-expired'],
    [plan('sts-testing', true), out({ established: true, verified: true }), 'success'],
    [plan('sts-testing', true, true), out({ established: true, verified: true }), 'validation-failure'],
    [plan('sts-enforce', true), out({ problem: { type: 'certificate-host-mismatch', reason: 'x' } }), 'certificate-host-mismatch'],
    [plan('smarthost', true), out({ established: true, verified: true }), 'success'],
  ];
  for (const [p, o, want] of cases) assert.equal(tlsReportResult(p, o), want, `${p.label} ${JSON.stringify(o)}`);
});
