// Table tests of the pure MTA-STS parsing and matching (RFC 8461 §3.1, §3.2, §4.1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mxAllowed, mxMatchesPattern, parseStsPolicy, parseStsRecord } from './policy.ts';

test('TXT discovery record (RFC 8461 §3.1)', () => {
  const cases: [string[][], string][] = [
    [[['v=STSv1; id=20160831085700Z;']], 'policy:20160831085700Z'],
    [[['v=STSv1;id=abc']], 'policy:abc'],
    [[['v=STSv1; ', 'id=split', 'AcrossStrings']], 'policy:splitAcrossStrings'], // strings of one record are concatenated
    [[['v=spf1 -all'], ['v=STSv1; id=1']], 'policy:1'], // other records are discarded
    [[['v=STSv1; id=1'], ['v=STSv1; id=2']], 'none'], // more than one: no policy
    [[], 'none'],
    [[['v=STSv1;']], 'none'], // no id
    [[['v=STSv1; id=has-dash']], 'none'], // id is 1*32 ALPHA/DIGIT
    [[['v=STSv1; id=' + 'x'.repeat(33)]], 'none'],
    [[['v=STSv10; id=1']], 'none'],
    [[['V=STSv1; id=1']], 'none'], // %s: case-sensitive
    [[['v=STSv1; id=1; ext=value']], 'policy:1'], // unknown fields ignored
    [[['v=STSv1; garbage']], 'none'],
  ];
  for (const [records, want] of cases) {
    const r = parseStsRecord(records);
    assert.equal(r.kind === 'policy' ? `policy:${r.id}` : 'none', want, JSON.stringify(records));
  }
});

test('policy body (RFC 8461 §3.2)', () => {
  const ok = (text: string) => {
    const r = parseStsPolicy(text, 'id1');
    assert.ok('policy' in r, `${JSON.stringify(text)}: ${'error' in r ? r.error : ''}`);
    return r.policy;
  };
  const bad = (text: string, why: RegExp) => {
    const r = parseStsPolicy(text, 'id1');
    assert.ok('error' in r, `${JSON.stringify(text)} should be invalid`);
    assert.match(r.error, why);
  };
  assert.deepEqual(ok('version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n'),
    { id: 'id1', mode: 'enforce', maxAge: 86400, mx: ['mail.example.com', '*.example.net'] });
  assert.deepEqual(ok('version: STSv1\nmode: testing\nmx: MX.Example.COM.\nmax_age:604800'), { id: 'id1', mode: 'testing', maxAge: 604800, mx: ['mx.example.com'] });
  assert.deepEqual(ok('version: STSv1\nmode: none\nmax_age: 0\n'), { id: 'id1', mode: 'none', maxAge: 0, mx: [] });
  assert.equal(ok('version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 9999999999\n').maxAge, 31_557_600, 'capped at a year');
  assert.deepEqual(ok('version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\nmode: none\nx-extension: whatever\n').mode, 'enforce', 'first value wins, unknown keys ignored');
  bad('mode: enforce\nversion: STSv1\nmx: a.test\nmax_age: 1\n', /first line is not the version/);
  bad('version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n', /unsupported version/);
  bad('version: STSv1\nmode: Enforce\nmx: a.test\nmax_age: 1\n', /invalid mode/);
  bad('version: STSv1\nmode: enforce\nmax_age: 1\n', /needs at least one mx/);
  bad('version: STSv1\nmode: enforce\nmx: a.test\n', /no max_age/);
  bad('version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n', /invalid max_age/);
  bad('version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1d\n', /invalid max_age/);
  bad('version: STSv1\nmode: enforce\nmx: *.*.test\nmax_age: 1\n', /invalid mx pattern/);
  bad('version: STSv1\nmode: enforce\nmx: mail.*.test\nmax_age: 1\n', /invalid mx pattern/);
  bad('version: STSv1\nmode: enforce\nmx: a.test\n\nmax_age: 1\n', /line 4/);
  bad('<html><body>Not found</body></html>', /line 1/);
  bad('', /no version field/);
});

test('MX pattern matching (RFC 8461 §4.1): "*" is exactly one left-most label', () => {
  const cases: [string, string, boolean][] = [
    ['mail.example.com', 'mail.example.com', true],
    ['MAIL.example.com.', 'mail.example.com', true],
    ['mail.example.com', '*.example.com', true],
    ['example.com', '*.example.com', false],
    ['foo.bar.example.com', '*.example.com', false], // mailauth's suffix match says true
    ['xexample.com', '*.example.com', false],
    ['mail.example.com.evil.test', 'mail.example.com', false],
    ['mail.example.com', 'example.com', false],
    ['.example.com', '*.example.com', false],
  ];
  for (const [host, pattern, want] of cases) assert.equal(mxMatchesPattern(host, pattern), want, `${host} ~ ${pattern}`);
  assert.equal(mxAllowed({ mx: ['a.test', '*.b.test'] }, 'x.b.test'), true);
  assert.equal(mxAllowed({ mx: ['a.test', '*.b.test'] }, 'c.test'), false);
  assert.equal(mxAllowed({ mx: [] }, 'a.test'), false);
});
