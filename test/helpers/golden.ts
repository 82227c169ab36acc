// Golden-file comparison for builder output: a line diff that shows what changed, and
// UPDATE_GOLDEN=1 to rewrite the files after an intended change (review the git diff).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** A unified-style diff of two texts (lines prefixed "-" expected, "+" actual), with `context` lines around changes. */
export function lineDiff(expected: string, actual: string, context = 3): string {
  const a = expected.split('\n'), b = actual.split('\n');
  // Longest common subsequence table, from the end.
  const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const ops: { op: ' ' | '-' | '+'; line: string; at: number }[] = [];
  let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) ops.push({ op: ' ', line: a[i++]!, at: j++ });
    else if (j < b.length && (i >= a.length || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) ops.push({ op: '+', line: b[j]!, at: j++ });
    else ops.push({ op: '-', line: a[i++]!, at: j });
  }
  const show = ops.map((o, k) => o.op !== ' ' || ops.slice(Math.max(0, k - context), k + context + 1).some((x) => x.op !== ' '));
  const out: string[] = [];
  ops.forEach((o, k) => {
    if (show[k]) out.push(`${o.op} ${o.line}`);
    else if (show[k - 1]) out.push('  ...');
  });
  return out.join('\n');
}

/** Compares actual with the golden file at `url`; rewrites it under UPDATE_GOLDEN=1. Throws with a diff on mismatch. */
export function assertGolden(url: URL, actual: string): void {
  const path = fileURLToPath(url);
  if (process.env.UPDATE_GOLDEN === '1') {
    writeFileSync(path, actual);
    return;
  }
  if (!existsSync(path)) throw new Error(`golden file ${path} is missing; create it with UPDATE_GOLDEN=1`);
  const expected = readFileSync(path, 'utf8');
  if (expected !== actual) {
    throw new Error(`output differs from ${path} (- golden, + actual); if the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff:\n${lineDiff(expected, actual)}`);
  }
}
