// Crash safety with a real process kill: a child accepts and updates messages with fsync on
// and prints each fact only after the spool acknowledged it; we kill -9 it mid-flight (twice,
// the second time after it recovered the first crash), then reopen the spool and check that
// everything acknowledged is there, byte for byte, and nothing half-written is visible.
// (A process kill leaves the page cache intact; power-loss safety rests on the fsync
// ordering argued in docs/adr/0002-spool-format.md, which this cannot exercise.)
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { buffer as collect } from 'node:stream/consumers';
import { Spool } from '../../relay/spool/index.ts';
import { CRASH_SPOOL_OPTIONS, bodyFor } from './spool-crash-lib.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Facts {
  accepted: Map<string, number>;
  delivered: Array<[string, string]>;
  intent: Set<string>;
  completed: Set<string>;
}

/** Runs the child until it has printed `killAfter` accept lines, then SIGKILLs it. */
async function runAndKill(dir: string, firstSeq: number, killAfter: number, facts: Facts): Promise<{ recovered: number; signal: NodeJS.Signals | null }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'spool-crash-child.ts'), dir, String(firstSeq), '1000000', '48'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let accepts = 0;
  let recovered = -1;
  let killed = false;
  const lines = createInterface({ input: child.stdout });
  const exit = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  for await (const line of lines) {
    const [tag, id, arg] = line.split(' ');
    if (tag === 'R') recovered = Number(id);
    if (tag === 'A') {
      facts.accepted.set(id as string, Number(arg));
      accepts++;
    }
    if (tag === 'D') facts.delivered.push([id as string, arg as string]);
    if (tag === 'I') facts.intent.add(id as string);
    if (tag === 'C') facts.completed.add(id as string);
    if (accepts >= killAfter && !killed) {
      killed = true;
      child.kill('SIGKILL'); // keep reading: lines already in the pipe were acknowledged too
    }
  }
  clearTimeout(timer);
  return { recovered, signal: await exit };
}

describe('spool crash safety (kill -9)', () => {
  it('keeps every acknowledged message and state, shows nothing half-written', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'spool-crash-'));
    dirs.push(dir);
    const facts: Facts = { accepted: new Map(), delivered: [], intent: new Set(), completed: new Set() };

    const r1 = await runAndKill(dir, 0, 600, facts);
    assert.equal(r1.signal, 'SIGKILL');
    assert.equal(r1.recovered, 0);
    const r2 = await runAndKill(dir, 1_000_000, 400, facts);
    assert.equal(r2.signal, 'SIGKILL');
    assert.ok(r2.recovered > 0, 'the second child recovered the first one\'s messages');

    const spool = await Spool.open(dir, CRASH_SPOOL_OPTIONS);
    t.diagnostic(`acknowledged: ${facts.accepted.size} accepts, ${facts.delivered.length} deliveries, ${facts.completed.size} completions; recovery after the 2nd kill: ${JSON.stringify(spool.recovery)}`);
    try {
      let checked = 0;
      for (const [id, seq] of facts.accepted) {
        if (facts.completed.has(id)) {
          assert.equal(spool.has(id), false, `completed ${id} must stay gone`);
          continue;
        }
        if (!spool.has(id)) {
          assert.ok(facts.intent.has(id), `acknowledged message ${id} (seq ${seq}) is missing`);
          continue;
        }
        const m = await spool.load(id);
        assert.equal(m.envid, `seq-${seq}`);
        checked++;
      }
      for (const [id, address] of facts.delivered) {
        if (!spool.has(id)) {
          assert.ok(facts.intent.has(id), `message ${id} with a delivered recipient vanished without being completed`);
          continue;
        }
        const m = await spool.load(id);
        assert.equal(m.recipients.find((r) => r.address === address)?.state.state, 'delivered', `${id} ${address} must stay delivered`);
      }
      // Every message present, printed or not (cut off between fsync and print), is whole.
      const present = spool.due(Number.MAX_SAFE_INTEGER, 1_000_000);
      assert.equal(present.length, spool.size);
      for (const id of present) {
        const m = await spool.load(id);
        const seq = Number(m.envid?.slice(4));
        const want = bodyFor(seq);
        assert.equal(m.size, want.length, `${id} size`);
        assert.ok((await collect(spool.openBody(id))).equals(want), `${id} (seq ${seq}) body bytes`);
      }
      const bodies = readdirSync(join(dir, 'bodies'));
      assert.deepEqual(bodies.filter((f) => f.endsWith('.tmp')), [], 'no temp body files');
      for (const f of bodies) assert.ok(spool.has(f), `orphan body file ${f}`);
      t.diagnostic(`present: ${present.length}, of which acknowledged and checked: ${checked}`);
      assert.ok(checked > 300, `checked ${checked} acknowledged messages`);
      assert.ok(facts.completed.size > 50 && facts.delivered.length > 100);
    } finally {
      await spool.close();
    }
  });
});
