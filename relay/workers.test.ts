// Table tests of how a relay divides itself between worker processes (workers.ts), and of
// the metric aggregation its primary serves (cluster.ts), without starting a process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { aggregateWorkerMetrics } from './cluster.ts';
import { parseRelayConfig } from './config.ts';
import { createRelayMetrics } from './metrics.ts';
import { planWorkers, restartDelayMs, shardDir, shardIndexOf, workerConfig } from './workers.ts';

test('shard 0 is the spool root (the one-process layout), the others shard-<i> inside it', () => {
  assert.equal(shardDir('/var/spool/mailrelay', 0), '/var/spool/mailrelay');
  assert.equal(shardDir('/var/spool/mailrelay', 3), '/var/spool/mailrelay/shard-3');
  assert.equal(shardIndexOf('shard-3'), 3);
  for (const name of ['shard-0', 'shard-03', 'shard-', 'shard-x', 'log', 'bodies', 'DRAINING', 'shard-12345']) assert.equal(shardIndexOf(name), undefined, name);
});

test('every shard on disk gets a worker: the configured ones take mail, the rest only deliver', () => {
  assert.deepEqual(planWorkers(2, []), [{ index: 0, accepts: true }, { index: 1, accepts: true }]);
  assert.deepEqual(planWorkers(2, [1]), [{ index: 0, accepts: true }, { index: 1, accepts: true }]);
  assert.deepEqual(planWorkers(1, [1, 3, 3]), [{ index: 0, accepts: true }, { index: 1, accepts: false }, { index: 3, accepts: false }]);
  assert.deepEqual(planWorkers(4, [2, 6]), [0, 1, 2, 3].map((index) => ({ index, accepts: true })).concat([{ index: 6, accepts: false }]));
  assert.equal(planWorkers(1, []).length, 1, 'one process: no primary needed');
});

test('per-relay limits are divided between the workers, never to zero', () => {
  const config = parseRelayConfig({
    inbound: { maxConnections: 1000, maxConnectionsPerIp: 100, connectionRatePerIp: 10, connectionBurstPerIp: 50 },
    delivery: { concurrencyPerDestination: 10, destinations: { 'example.com': { concurrency: 3 }, 'example.org': { maxRecipientsPerTransaction: 50 } } },
  });
  const w = workerConfig(config, 2);
  assert.equal(w.inbound.maxConnections, 500);
  assert.equal(w.inbound.maxConnectionsPerIp, 50);
  assert.equal(w.inbound.connectionRatePerIp, 5);
  assert.equal(w.inbound.connectionBurstPerIp, 25);
  assert.equal(w.delivery.concurrencyPerDestination, 5);
  assert.deepEqual(w.delivery.destinations, { 'example.com': { concurrency: 1 }, 'example.org': { maxRecipientsPerTransaction: 50 } });
  const three = workerConfig(config, 3);
  assert.equal(three.delivery.concurrencyPerDestination * 3 <= 10, true, 'the destination never sees more than the configured connections');
  assert.equal(workerConfig(config, 1), config);
  assert.equal(config.delivery.concurrencyPerDestination, 10, 'the input is not modified');
  assert.equal(workerConfig(parseRelayConfig({ delivery: { concurrencyPerDestination: 1 } }), 4).delivery.concurrencyPerDestination, 1);
});

test('a worker that keeps crashing is restarted ever more slowly, up to 30 s', () => {
  assert.deepEqual([1, 2, 3, 4, 7, 8, 20].map(restartDelayMs), [500, 1000, 2000, 4000, 30_000, 30_000, 30_000]);
});

test('the primary sums the workers\' metrics; levels and ages take the largest; the learned limit the smallest learned', async () => {
  const workers = [createRelayMetrics(new Registry(), { defaultMetrics: false }), createRelayMetrics(new Registry(), { defaultMetrics: false })];
  workers[0]!.inboundMessages.inc({ result: 'accepted' }, 7);
  workers[1]!.inboundMessages.inc({ result: 'accepted' }, 5);
  workers[0]!.inboundSessions.set(3);
  workers[1]!.inboundSessions.set(4);
  workers[0]!.draining.set(1);
  workers[1]!.draining.set(1);
  workers[0]!.queueOldestAge.set(12);
  workers[1]!.queueOldestAge.set(40);
  workers[0]!.learnedRecipientLimit.set(0); // none learned
  workers[1]!.learnedRecipientLimit.set(20);
  workers[0]!.deliveryDuration.observe(0.02);
  workers[1]!.deliveryDuration.observe(0.2);
  const text = await aggregateWorkerMetrics(await Promise.all(workers.map((w) => w.registry.getMetricsAsJSON()))).metrics();
  const value = (series: string): number => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
  assert.equal(value('mailrelay_inbound_messages_total{result="accepted"}'), 12);
  assert.equal(value('mailrelay_inbound_sessions'), 7);
  assert.equal(value('mailrelay_draining'), 1);
  assert.equal(value('mailrelay_queue_oldest_message_age_seconds'), 40);
  assert.equal(value('mailrelay_learned_recipient_limit'), 20);
  assert.equal(value('mailrelay_delivery_duration_seconds_count'), 2);
  assert.equal(value('mailrelay_delivery_duration_seconds_bucket{le="0.025"}'), 1);
  // Nobody learned anything: 0, not a missing series.
  workers[1]!.learnedRecipientLimit.set(0);
  const none = await aggregateWorkerMetrics(await Promise.all(workers.map((w) => w.registry.getMetricsAsJSON()))).metrics();
  assert.match(none, /^mailrelay_learned_recipient_limit 0$/m);
});
