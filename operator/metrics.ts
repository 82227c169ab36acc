// Every operator metric, declared once with a HELP text (the relay's are in relay/metrics.ts).
// The chart's dashboards and alerts use these names; label values are bounded enums.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { buildInfo } from '../relay/version.ts';

/** Builds the operator's metrics on a registry of their own. */
export function createOperatorMetrics(registry: Registry = new Registry(), opts: { defaultMetrics?: boolean } = {}) {
  const registers = [registry];
  // Unprefixed process_* and nodejs_*, the names generic dashboards and alerts query.
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const info = new Gauge({
    name: 'mailrelay_operator_build_info',
    help: 'Always 1; its labels say which mailrelay version (and Node.js version) this operator runs.',
    labelNames: ['version', 'nodejs_version'] as const, registers,
  });
  info.set(buildInfo(), 1);
  return {
    registry,
    buildInfo: info,
    reconciles: new Counter({
      name: 'mailrelay_operator_reconcile_total',
      help: 'MailRelay reconciles by result: success, error (will be retried with backoff), invalid (spec rejected, Degraded=True).',
      labelNames: ['result'] as const, registers,
    }),
    reconcileDuration: new Histogram({
      name: 'mailrelay_operator_reconcile_duration_seconds',
      help: 'Time one MailRelay reconcile took, from gathering inputs to writing status.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    relays: new Gauge({
      name: 'mailrelay_operator_relays',
      help: 'MailRelay resources known to the operator, by their Ready condition status (True, False, Unknown).',
      labelNames: ['ready'] as const, registers,
    }),
    leader: new Gauge({
      name: 'mailrelay_operator_leader',
      help: '1 if this operator replica holds the leader Lease and reconciles, else 0.',
      registers,
    }),
    writes: new Counter({
      name: 'mailrelay_operator_apply_total',
      help: 'Server-side applies of child objects, by result: applied, unchanged (skipped, hash equal), error.',
      labelNames: ['result'] as const, registers,
    }),
    workqueueDepth: new Gauge({
      name: 'mailrelay_operator_workqueue_depth',
      help: 'MailRelay keys waiting in the work queue.',
      registers,
    }),
    watchRestarts: new Counter({
      name: 'mailrelay_operator_watch_restarts_total',
      help: 'Informer restarts after a watch error (410 Gone relists are not counted).',
      labelNames: ['kind'] as const, registers,
    }),
  };
}

/** The operator's metric objects. */
export type OperatorMetrics = ReturnType<typeof createOperatorMetrics>;
