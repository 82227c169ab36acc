// Runs a whole relay (inbound -> spool -> scheduler -> engine) in-process on loopback, for
// end-to-end tests, with a fast retry schedule so "deferred then delivered" takes seconds.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseRelayConfig, type RelayConfigInput } from '../../relay/config.ts';
import { startRelay, type RelayHandle, type RelayRuntimeOptions } from '../../relay/service.ts';

/** Deep-merges plain objects (arrays and scalars replace). */
function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev)
      ? merge(prev as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/** A relay config for tests: loopback, port 0, smarthost = the given peer port, short retries. */
export function testRelayConfig(peerPort: number, overrides: RelayConfigInput = {}, spoolDir = mkdtempSync(join(tmpdir(), 'mailrelay-spool-'))): RelayConfigInput {
  const base: RelayConfigInput = {
    inbound: { host: '127.0.0.1', port: 0, hostname: 'relay.test', relayNetworks: ['127.0.0.0/8', '::1/128'] },
    spool: { dir: spoolDir, fsync: true },
    http: { host: '127.0.0.1', port: 0 },
    delivery: {
      mode: 'smarthost',
      smarthost: { host: '127.0.0.1', port: peerPort, tls: 'none' },
      retry: { schedule: [0.3, 0.6], jitter: 0, maxAge: 3600 },
      timeouts: { connect: 5, greeting: 5, command: 5, dataInit: 5, dataBlock: 5, dataTerm: 5, idle: 2 },
    },
    drain: { timeout: 5 },
    log: { level: 'warn' },
  };
  return merge(base, overrides);
}

/** Starts an in-process relay delivering to 127.0.0.1:peerPort. */
export async function startTestRelay(peerPort: number, overrides: RelayConfigInput = {}, rt: RelayRuntimeOptions = {}): Promise<RelayHandle & { config: ReturnType<typeof parseRelayConfig> }> {
  const config = parseRelayConfig(testRelayConfig(peerPort, overrides));
  const relay = await startRelay(config, { log: pino({ level: config.log.level }), ...rt });
  return Object.assign(relay, { config });
}

/** Scrapes the relay's /metrics over HTTP and returns the value of one series (sum over matching label sets). */
export async function scrape(httpPort: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) sum += Number(m[3]);
  }
  return sum;
}
