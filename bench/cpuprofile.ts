// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function, heaviest first.
// Usage: npx tsx bench/cpuprofile.ts FILE.cpuprofile [--top N]
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface HotSpot { name: string; where: string; selfMs: number; share: number }

const ROOT = fileURLToPath(new URL('..', import.meta.url));

// tsx runs TypeScript minified onto one line, so profile positions of our sources are all
// "line 1". Its transform cache (os.tmpdir()/tsx-<uid>/) keeps each file's source map with the
// source path and text: decode it to get the original line back.
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Generated (line, column) -> original line, from a v3 "mappings" string. */
function decodeMappings(mappings: string): Array<Array<[number, number]>> {
  const lines: Array<Array<[number, number]>> = [];
  let srcLine = 0;
  for (const lineText of mappings.split(';')) {
    const segs: Array<[number, number]> = [];
    let col = 0;
    for (const seg of lineText.split(',')) {
      if (!seg) continue;
      const vals: number[] = [];
      let v = 0;
      let shift = 0;
      for (const ch of seg) {
        const d = B64.indexOf(ch);
        v += (d & 31) << shift;
        if (d & 32) { shift += 5; continue; }
        vals.push(v & 1 ? -(v >>> 1) : v >>> 1);
        v = 0;
        shift = 0;
      }
      col += vals[0] ?? 0;
      if (vals.length >= 4) {
        srcLine += vals[2]!;
        segs.push([col, srcLine]);
      }
    }
    lines.push(segs);
  }
  return lines;
}

interface TsxEntry { code: string[]; lines: Array<Array<[number, number]>> | undefined; mappings: string }
let tsxEntries: Map<string, TsxEntry[]> | undefined;
const chosen = new Map<string, TsxEntry | null>();

/** Every cached transform in tsx's cache, by source path (a file edited since has several). */
function loadTsxEntries(): Map<string, TsxEntry[]> {
  if (tsxEntries) return tsxEntries;
  tsxEntries = new Map();
  const dir = join(tmpdir(), `tsx-${process.getuid?.() ?? 0}`);
  if (!existsSync(dir)) return tsxEntries;
  for (const f of readdirSync(dir)) {
    try {
      const j = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { code?: string; map?: { sources?: string[]; mappings?: string } };
      const src = j.map?.sources?.[0];
      if (!src || !j.map?.mappings || typeof j.code !== 'string') continue;
      const list = tsxEntries.get(src) ?? [];
      list.push({ code: j.code.split('\n'), lines: undefined, mappings: j.map.mappings });
      tsxEntries.set(src, list);
    } catch {
      // not a transform cache entry
    }
  }
  return tsxEntries;
}

/**
 * The cache entry that produced the profiled code: the one where the profile's named
 * functions sit at the positions the profile gives.
 */
function entryFor(path: string, frames: readonly CallFrame[]): TsxEntry | null {
  if (chosen.has(path)) return chosen.get(path)!;
  let best: TsxEntry | null = null;
  let bestScore = 0;
  for (const e of loadTsxEntries().get(path) ?? []) {
    let score = 0;
    for (const f of frames) {
      if (!f.functionName || f.functionName.startsWith('(')) continue;
      const text = e.code[f.lineNumber] ?? '';
      if (text.slice(Math.max(0, f.columnNumber - f.functionName.length - 12), f.columnNumber + 2).includes(f.functionName)) score++;
    }
    if (score > bestScore) { best = e; bestScore = score; }
  }
  chosen.set(path, best);
  return best;
}

function originalLine(path: string, frames: readonly CallFrame[], line: number, column: number): number | undefined {
  const e = entryFor(path, frames);
  if (!e) return undefined;
  e.lines ??= decodeMappings(e.mappings);
  const segs = e.lines[line];
  if (!segs?.length) return undefined;
  let best: [number, number] | undefined;
  for (const s of segs) {
    if (s[0] > column) break;
    best = s;
  }
  return (best ?? segs[0]!)[1] + 1;
}

function where(cf: CallFrame, framesOf: (url: string) => readonly CallFrame[]): string {
  if (!cf.url) return '(native)';
  let path = cf.url;
  let line = cf.lineNumber + 1;
  try {
    if (path.startsWith('file:')) {
      const abs = fileURLToPath(path);
      if (abs.endsWith('.ts')) line = originalLine(abs, framesOf(cf.url), cf.lineNumber, cf.columnNumber) ?? line;
      path = relative(ROOT, abs);
    }
  } catch {
    // keep the URL
  }
  path = path.replace(/^(\.\.\/)*(work\/main\/)?node_modules\//, 'nm/');
  return `${path}:${line}`;
}

/** Self time per function (by name and location), and totals, from one profile file. */
export function summarise(file: string, top = 25): { totalMs: number; idleMs: number; gcMs: number; spots: HotSpot[]; byArea: Array<[string, number]> } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const framesByUrl = new Map<string, CallFrame[]>();
  for (const n of p.nodes) framesByUrl.set(n.callFrame.url, [...(framesByUrl.get(n.callFrame.url) ?? []), n.callFrame]);
  const framesOf = (url: string): readonly CallFrame[] => framesByUrl.get(url) ?? [];
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  const fn = new Map<string, { name: string; where: string; ms: number }>();
  const area = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  let gcMs = 0;
  for (const [id, ms] of self) {
    const cf = byId.get(id)!.callFrame;
    totalMs += ms;
    if (cf.functionName === '(idle)') { idleMs += ms; continue; }
    if (cf.functionName === '(garbage collector)') gcMs += ms;
    const w = where(cf, framesOf);
    const key = `${cf.functionName}@${w}`;
    const e = fn.get(key) ?? { name: cf.functionName || '(anonymous)', where: w, ms: 0 };
    e.ms += ms;
    fn.set(key, e);
    const a = !cf.url ? cf.functionName : cf.url.startsWith('node:') ? 'node: core' : w.startsWith('nm/') ? `nm/${w.split('/')[1]!}` : w.split(':')[0]!;
    area.set(a, (area.get(a) ?? 0) + ms);
  }
  const busy = totalMs - idleMs;
  const spots = [...fn.values()].sort((a, b) => b.ms - a.ms).slice(0, top)
    .map((e) => ({ name: e.name, where: e.where, selfMs: e.ms, share: e.ms / busy }));
  const byArea = [...area.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  return { totalMs, idleMs, gcMs, spots, byArea };
}

export function formatSummary(file: string, top = 25): string {
  const s = summarise(file, top);
  const busy = s.totalMs - s.idleMs;
  const lines = [
    `profile ${file}: ${(s.totalMs / 1000).toFixed(1)} s sampled, ${(busy / 1000).toFixed(1)} s busy on the main thread, GC ${(s.gcMs / 1000).toFixed(2)} s`,
    '',
    '| self ms | share of busy | function | where |',
    '|---:|---:|---|---|',
    ...s.spots.map((e) => `| ${e.selfMs.toFixed(0)} | ${(e.share * 100).toFixed(1)}% | ${e.name} | ${e.where} |`),
    '',
    '| self ms | share of busy | file / package |',
    '|---:|---:|---|',
    ...s.byArea.map(([a, ms]) => `| ${ms.toFixed(0)} | ${((ms / busy) * 100).toFixed(1)}% | ${a} |`),
  ];
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' } } });
  for (const f of positionals) console.log(formatSummary(f, Number(values.top ?? 25)) + '\n');
}
