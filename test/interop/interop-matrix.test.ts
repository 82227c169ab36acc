// The interoperability matrix of issue 10 (see matrix.ts): seeds 000-003 against Postfix,
// Exim, Haraka, smtp-server and our fault server as next hops; writes docs/interop.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { type CellResult, SCENARIOS, renderInteropDoc, runCell } from './matrix.ts';
import { type NextHop, eximHop, faultHop, harakaHop, postfixHop, smtpServerHop } from './next-hops.ts';

const DOC = new URL('../../docs/interop.md', import.meta.url);

const HOPS: { key: string; start: () => Promise<NextHop> }[] = [
  { key: 'postfix', start: () => postfixHop({ pipelining: true }) },
  { key: 'postfix-nopipe', start: () => postfixHop({ pipelining: false }) },
  { key: 'postfix-overshoot', start: () => postfixHop({ pipelining: true, overshootLimit: 2 }) },
  { key: 'exim', start: () => eximHop({ reject: false }) },
  { key: 'exim-reject', start: () => eximHop({ reject: true }) },
  { key: 'haraka', start: () => harakaHop() },
  { key: 'smtp-server-enh', start: () => smtpServerHop({ enhanced: true, limitCode: 552, limitText: 'Too many recipients' }) },
  { key: 'smtp-server-enh-553', start: () => smtpServerHop({ enhanced: true, limitCode: 552, limitText: '5.5.3 Too many recipients' }) },
  { key: 'smtp-server-enh-452', start: () => smtpServerHop({ enhanced: true, limitCode: 452, limitText: '4.5.3 Too many recipients' }) },
  { key: 'smtp-server-plain', start: () => smtpServerHop({ enhanced: false, limitCode: 552, limitText: 'Too many recipients' }) },
  { key: 'fault', start: () => faultHop() },
];

const only = process.env.INTEROP_ONLY?.split(',');

test('interop matrix: seeds 000-003 against real next hops', { timeout: 900_000 }, async () => {
  const started = Date.now();
  const rows: { hop: string; notes: string; cells: CellResult[] }[] = [];
  const failures: string[] = [];
  for (const h of HOPS.filter((x) => !only || only.includes(x.key))) {
    const hop = await h.start();
    try {
      const cells: CellResult[] = [];
      for (const s of SCENARIOS) {
        const c = await runCell(hop, s);
        cells.push(c);
        console.log(`${hop.name} × ${s.id}: ${c.text} (${c.seconds.toFixed(1)} s)`);
        if (!c.ok) failures.push(`${hop.name} × ${s.id}: ${c.problems.join('; ')}`);
      }
      rows.push({ hop: hop.name, notes: hop.notes, cells });
    } finally {
      await hop.close();
    }
  }
  console.log(`interop matrix: ${rows.length} next hops × ${SCENARIOS.length} scenarios in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const doc = renderInteropDoc(rows);
  const out = process.env.INTEROP_OUT;
  if (out) writeFileSync(out, doc);
  if (!only) {
    if (process.env.INTEROP_UPDATE === '1') writeFileSync(DOC, doc);
    else assert.equal(readFileSync(DOC, 'utf8'), doc, 'docs/interop.md is not what the matrix gives: rerun with INTEROP_UPDATE=1 and review the diff');
  }
  assert.deepEqual(failures, []);
});
