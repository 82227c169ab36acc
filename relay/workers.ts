// PURE: how a relay with `workers: N` divides itself between N processes (ADR 0007). Each
// worker is a whole relay (inbound sessions, its own spool shard, scheduler and delivery
// engine); the primary only supervises, serves HTTP and aggregates. What is decided here:
// where each shard lives, which worker owns which shard, and each worker's share of the
// limits that the config states per relay.
import { join } from 'node:path';
import type { RelayConfig } from './config.ts';

/** Shard i's spool directory: shard 0 is the spool root itself (the layout of a one-process relay), the others `shard-<i>` inside it. */
export function shardDir(root: string, index: number): string {
  return index === 0 ? root : join(root, `shard-${index}`);
}

/** The shard index of a `shard-<i>` directory name (i >= 1), or undefined. */
export function shardIndexOf(name: string): number | undefined {
  const m = /^shard-([1-9]\d{0,3})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** One worker process: the shard it owns, and whether it takes mail or only delivers what its shard holds. */
export interface WorkerSlot {
  index: number;
  /** false: a shard left by a relay that ran more workers; delivered, then retired. */
  accepts: boolean;
}

/**
 * The workers to run: shards 0..workers-1 accept mail; every other shard found on disk gets a
 * worker that only delivers it, so lowering `workers` never strands a spooled message.
 */
export function planWorkers(workers: number, shardsOnDisk: readonly number[]): WorkerSlot[] {
  const slots: WorkerSlot[] = Array.from({ length: workers }, (_, index) => ({ index, accepts: true }));
  for (const i of [...new Set(shardsOnDisk)].sort((a, b) => a - b)) if (i >= workers) slots.push({ index: i, accepts: false });
  return slots;
}

/** A per-relay count split over n workers: at least 1 each, the total never above the stated limit (unless that is below n). */
const share = (total: number, n: number): number => Math.max(1, Math.floor(total / n));

/**
 * Worker `index`'s config of `n` accepting workers. The limits the config states per relay
 * are divided: outbound connections per destination (so the destination sees at most the
 * configured number), inbound sessions in all and per client IP, and the per-IP connection
 * rate and burst. The primary hands connections to workers in turn (round robin), so one
 * client's connections are spread evenly and the per-worker share approximates the whole.
 */
export function workerConfig(config: RelayConfig, n: number): RelayConfig {
  if (n <= 1) return config;
  const i = config.inbound;
  const d = config.delivery;
  return {
    ...config,
    inbound: {
      ...i,
      maxConnections: share(i.maxConnections, n),
      maxConnectionsPerIp: share(i.maxConnectionsPerIp, n),
      connectionRatePerIp: i.connectionRatePerIp / n,
      connectionBurstPerIp: share(i.connectionBurstPerIp, n),
    },
    delivery: {
      ...d,
      concurrencyPerDestination: share(d.concurrencyPerDestination, n),
      destinations: Object.fromEntries(Object.entries(d.destinations).map(([k, v]) => [k, v.concurrency === undefined ? v : { ...v, concurrency: share(v.concurrency, n) }])),
    },
  };
}

/** Restart delay after the k-th crash in a row of one worker: 0.5 s doubling to 30 s. */
export function restartDelayMs(crashesInARow: number): number {
  return Math.min(30_000, 500 * 2 ** Math.max(0, crashesInARow - 1));
}
