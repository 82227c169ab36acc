// Time to drain the issue-14 burst (test/cluster/autoscale.test.ts) with the operator's
// autoscaler (1 -> up to 4 pods) against a fixed single replica, side by side on one real
// control plane with the simulated kubelet, the next hop Postfix's smtp-sink rate-limited
// (test/cluster/burst.ts SINK_DELAYS). Drain time: first message sent -> the sink holds
// every acknowledged one. Rounds alternate fixed and autoscaled; medians and the ratio.
//
//   npm run bench:autoscale [-- --messages 20000 --rate 250 --rounds 1]
import { parseArgs } from 'node:util';
import { startSmtpSink } from '../test/peers/postfix.ts';
import { eventually, startCluster, startOperator } from '../test/cluster/harness.ts';
import { SINK_DELAYS, applyRelay, burstRelaySpec, getRelay, sendBurst, waitForSink } from '../test/cluster/burst.ts';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '20000' }, rate: { type: 'string', default: '250' }, rounds: { type: 'string', default: '1' } } });
const total = Number(values.messages);
const rate = Number(values.rate);
const rounds = Number(values.rounds);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const env = await startCluster({ kubelet: true, volumes: 12 });
const op = startOperator(env, 'bench', ['--queue-poll-interval', '1']);
const results: Record<'fixed' | 'autoscaled', number[]> = { fixed: [], autoscaled: [] };
const peaks: number[] = [];
try {
  for (let round = 0; round < rounds; round++) {
    for (const variant of ['fixed', 'autoscaled'] as const) {
      const ns = `${variant}-${round}`;
      env.kubectl(['create', 'namespace', ns]);
      const sink = await startSmtpSink({ dump: false, delays: SINK_DELAYS, maxConcurrency: 100 });
      const scaling = variant === 'fixed' ? { replicas: 1 } : { autoscaling: { minReplicas: 1, maxReplicas: 4, targetQueuePerReplica: 500, targetOldestAgeSeconds: 600, scaleDownStabilizationSeconds: 5 } };
      applyRelay(env, ns, 'relay', burstRelaySpec(sink.port, scaling));
      await eventually(`${ns} ready`, () => getRelay(env, ns, 'relay').status?.readyReplicas === 1, 180_000);
      let peak = 1;
      const watch = setInterval(() => {
        void env.cp.request(`/apis/apps/v1/namespaces/${ns}/statefulsets/relay`).then((r) => { peak = Math.max(peak, (r.body as { spec?: { replicas?: number } }).spec?.replicas ?? 0); }, () => undefined);
      }, 500);
      const t0 = Date.now();
      const burst = await sendBurst(env, ns, 'relay', { total, ratePerSecond: rate, timeoutMs: 900_000 });
      await waitForSink(sink, burst.acknowledged.size, 1_800_000);
      const ms = Date.now() - t0;
      clearInterval(watch);
      results[variant].push(ms);
      if (variant === 'autoscaled') peaks.push(peak);
      process.stderr.write(`round ${round + 1} ${variant}: ${burst.acknowledged.size} messages drained in ${(ms / 1000).toFixed(1)} s (sent in ${(burst.sendMs / 1000).toFixed(1)} s, peak ${peak} pods)\n`);
      env.kubectl(['delete', 'mailrelay', '-n', ns, 'relay', '--wait=false']);
      await sink.close();
    }
  }
} finally {
  await op.stop();
  await env.close();
}
const f = median(results.fixed);
const a = median(results.autoscaled);
console.log(`| variant | drain time (median of ${rounds}) | peak pods |`);
console.log('| --- | --- | --- |');
console.log(`| fixed, 1 replica | ${(f / 1000).toFixed(1)} s | 1 |`);
console.log(`| autoscaled, 1 -> max 4 | ${(a / 1000).toFixed(1)} s | ${median(peaks)} |`);
console.log(`\nfixed / autoscaled: ${(f / a).toFixed(2)}x (${total} messages at up to ${rate}/s)`);
