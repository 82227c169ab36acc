// Builds a delivery engine pointed at a loopback peer, with test-sized timeouts.
import { Readable } from 'node:stream';
import { DeliveryEngine, type EngineOptions, type OutboundMessage } from '../../relay/outbound/engine.ts';
import { createRelayMetrics, type RelayMetrics } from '../../relay/metrics.ts';

/** An engine that sends everything to 127.0.0.1:port (smarthost mode, no TLS unless overridden). */
export function engineFor(port: number, overrides: Partial<EngineOptions> = {}): { engine: DeliveryEngine; metrics: RelayMetrics } {
  const metrics = createRelayMetrics(undefined, { defaultMetrics: false });
  const engine = new DeliveryEngine({
    mode: 'smarthost',
    smarthost: { host: '127.0.0.1', port, tls: overrides.tls ?? 'none' },
    mxPort: port,
    tls: 'none',
    tlsVerify: false,
    heloName: 'relay.test',
    pipelining: true,
    chunking: true,
    maxRecipientsPerTransaction: 100,
    concurrencyPerDestination: 4,
    maxMessagesPerConnection: 100,
    destinations: {},
    timeouts: { connect: 5000, greeting: 5000, command: 5000, dataInit: 5000, dataBlock: 5000, dataTerm: 5000, idle: 2000 },
    overQuotaPolicy: 'bounce',
    metrics,
    ...overrides,
  });
  return { engine, metrics };
}

/** A message whose body is re-read from the same bytes for every transaction. */
export function message(from: string, to: string[], body: string | Buffer, id = 'test'): OutboundMessage {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return {
    id, from, recipients: to.map((address) => ({ address })), size: bytes.length,
    body: () => Readable.from([bytes]),
  };
}

/** Reads a counter's value for one label set from the registry (what a scrape would show). */
export async function counterValue(metrics: RelayMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await metrics.registry.getSingleMetric(name)?.get();
  if (!m) throw new Error(`no metric ${name}`);
  return m.values
    .filter((v) => Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val))
    .reduce((a, v) => a + v.value, 0);
}
