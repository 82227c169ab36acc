// Every relay metric, declared once with a HELP text that says what it counts.
// These names are a contract: the chart's dashboards and alerts are built on them
// (docs/metrics.md). Label values are bounded enums — never a recipient, a domain
// or a message id. Import the typed objects; never look a metric up by name.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { buildInfo } from './version.ts';

/** SMTP commands whose replies the delivery engine counts (the `command` label). */
export type ReplyCommand = 'connect' | 'ehlo' | 'helo' | 'mail' | 'rcpt' | 'data' | 'bdat' | 'dot' | 'rset' | 'auth' | 'starttls' | 'quit';
/** Why a recipient was put back for a later attempt (the `reason` label). */
export type RetryReason = 'too_many_recipients' | 'temporary_reply' | 'connection' | 'timeout' | 'tls';
/** The policy an outbound TLS outcome is counted under (the `policy` label; RFC 8460 policy types, plus the smarthost). */
export const TLS_POLICY_LABELS = ['smarthost', 'sts-enforce', 'sts-testing', 'no-policy'] as const;
/** Outbound TLS outcomes (the `result` label): success or an RFC 8460 §4.3.1 result type. */
export const TLS_RESULT_LABELS = ['success', 'starttls-not-supported', 'certificate-host-mismatch', 'certificate-expired', 'certificate-not-trusted', 'validation-failure'] as const;
/** MTA-STS policy fetch outcomes (the `result` label): fetched, or an RFC 8460 §4.3.2.2 result type. */
export const STS_FETCH_LABELS = ['fetched', 'sts-policy-fetch-error', 'sts-policy-invalid', 'sts-webpki-invalid'] as const;

/** Builds the relay's metrics on a registry of their own (one per relay, so tests can run several). */
export function createRelayMetrics(registry: Registry = new Registry(), opts: { defaultMetrics?: boolean } = {}) {
  const m = declareRelayMetrics(registry, opts);
  // Every enum label value starts at 0, so rate()/increase() see the first event instead of
  // a series that appears already at 1 (and so the dashboards show zeros, not "no data").
  for (const c of ['too_many_recipients', 'mailbox'] as const) m.rcpt552.inc({ class: c }, 0);
  for (const r of ['too_many_recipients', 'temporary_reply', 'connection', 'timeout', 'tls'] as const) m.retries.inc({ reason: r }, 0);
  for (const o of ['delivered', 'deferred', 'bounced', 'expired'] as const) m.recipients.inc({ outcome: o }, 0);
  for (const o of ['delivered', 'deferred', 'bounced', 'expired'] as const) m.dsnRecipients.inc({ outcome: o }, 0);
  for (const r of ['delivered', 'partial', 'deferred', 'failed'] as const) m.deliveryAttempts.inc({ result: r }, 0);
  for (const r of ['accepted', 'rejected', 'tempfail'] as const) m.inboundMessages.inc({ result: r }, 0);
  for (const t of ['bounce', 'delay'] as const) m.dsnSent.inc({ type: t }, 0);
  m.partialDeliveries.inc(0);
  for (const policy of TLS_POLICY_LABELS) for (const result of TLS_RESULT_LABELS) m.tlsSessions.inc({ policy, result }, 0);
  for (const result of STS_FETCH_LABELS) m.mtaStsFetches.inc({ result }, 0);
  for (const mode of ['enforce', 'testing', 'none'] as const) m.mtaStsPolicies.set({ mode }, 0);
  m.buildInfo.set(buildInfo(), 1);
  return m;
}

function declareRelayMetrics(registry: Registry, opts: { defaultMetrics?: boolean }) {
  const registers = [registry];
  // Unprefixed: process_* and nodejs_* are the names generic dashboards and alerts query;
  // the job and pod labels tell relays from the operator.
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  return {
    registry,
    buildInfo: new Gauge({
      name: 'mailrelay_build_info',
      help: 'Always 1; its labels say which mailrelay version (and Node.js version) this relay runs, e.g. to see a rollout progress.',
      labelNames: ['version', 'nodejs_version'] as const, registers,
    }),
    smtpReplies: new Counter({
      name: 'mailrelay_smtp_replies_total',
      help: 'Replies the delivery engine received from remote SMTP servers, by the command they answered and their 3-digit code.',
      labelNames: ['command', 'code'] as const, registers,
    }),
    rcpt552: new Counter({
      name: 'mailrelay_rcpt_552_total',
      help: 'RCPT replies with code 552, by how they were read: too_many_recipients (after an accepted RCPT, RFC 5321 4.5.3.1.10) or mailbox (e.g. 5.2.2 over quota).',
      labelNames: ['class'] as const, registers,
    }),
    retries: new Counter({
      name: 'mailrelay_retries_total',
      help: 'Recipients put back for a later attempt, by reason.',
      labelNames: ['reason'] as const, registers,
    }),
    partialDeliveries: new Counter({
      name: 'mailrelay_partial_deliveries_total',
      help: 'Transactions in which some recipients were accepted and others were not.',
      registers,
    }),
    recipients: new Counter({
      name: 'mailrelay_recipients_total',
      help: 'Recipient outcomes of delivery attempts of ordinary mail: delivered, deferred, bounced (permanent failure) or expired (max age reached). Bounce notices are counted in mailrelay_dsn_recipients_total.',
      labelNames: ['outcome'] as const, registers,
    }),
    dsnRecipients: new Counter({
      name: 'mailrelay_dsn_recipients_total',
      help: 'Recipient outcomes of bounce and delay notices the relay delivers (messages with a null reverse-path): delivered, deferred, bounced or expired. Kept out of mailrelay_recipients_total, so a notice that bounces is not counted as another bounce.',
      labelNames: ['outcome'] as const, registers,
    }),
    deliveryAttempts: new Counter({
      name: 'mailrelay_delivery_attempts_total',
      help: 'Delivery attempts (transactions, and attempts that found no host to talk to) by result: delivered (all accepted), partial, deferred (none accepted, or no connection; retry) or failed (none accepted, permanent).',
      labelNames: ['result'] as const, registers,
    }),
    learnedRecipientLimit: new Gauge({
      name: 'mailrelay_learned_recipient_limit',
      help: 'Smallest per-transaction recipient limit learned from "too many recipients" replies, over all destinations (0 = none learned).',
      // Over worker processes: the smallest one learned (aggregateWorkerMetrics leaves out the zeros).
      aggregator: 'min', registers,
    }),
    learnedRecipientLimitDestinations: new Gauge({
      name: 'mailrelay_learned_recipient_limit_destinations',
      help: 'Number of destinations for which a recipient limit below the configured one has been learned (with several worker processes: the most any one of them learned).',
      aggregator: 'max', registers,
    }),
    connectionsOpen: new Gauge({
      name: 'mailrelay_outbound_connections',
      help: 'Open outbound SMTP connections.',
      registers,
    }),
    queueMessages: new Gauge({
      name: 'mailrelay_queue_messages',
      help: 'Messages in the spool by state: queued (has recipients due now or pending) or deferred (waiting for a retry).',
      labelNames: ['state'] as const, registers,
    }),
    queueOldestAge: new Gauge({
      name: 'mailrelay_queue_oldest_message_age_seconds',
      help: 'Age of the oldest message still in the spool, in seconds (0 when empty).',
      aggregator: 'max', registers,
    }),
    queueOldestQueuedAge: new Gauge({
      name: 'mailrelay_queue_oldest_queued_message_age_seconds',
      help: 'Age of the oldest message waiting for its first or next due delivery attempt (deferred messages waiting for a retry left out), in seconds (0 when none): how far delivery is behind arrivals; the autoscaler\'s age signal.',
      registers,
    }),
    deliveryDuration: new Histogram({
      name: 'mailrelay_delivery_duration_seconds',
      help: 'Duration of one delivery transaction, from MAIL FROM to the final reply.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    queueResidence: new Histogram({
      name: 'mailrelay_queue_residence_seconds',
      help: 'Time a recipient spent in the spool, from arrival to its final outcome (delivered, bounced or expired).',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 14400, 86400, 432000],
      registers,
    }),
    inboundMessages: new Counter({
      name: 'mailrelay_inbound_messages_total',
      help: 'Messages offered to the relay over SMTP, by result: accepted (spooled, 250 sent), rejected, or tempfail (spool could not take it).',
      labelNames: ['result'] as const, registers,
    }),
    inboundRejections: new Counter({
      name: 'mailrelay_inbound_rejections_total',
      help: 'Inbound SMTP commands answered with a 4xx/5xx, by reply code.',
      labelNames: ['code'] as const, registers,
    }),
    inboundSessions: new Gauge({
      name: 'mailrelay_inbound_sessions',
      help: 'Inbound SMTP sessions currently open.',
      registers,
    }),
    inboundBytes: new Counter({
      name: 'mailrelay_inbound_bytes_total',
      help: 'Bytes of message data accepted into the spool.',
      registers,
    }),
    inboundProxyRefusals: new Counter({
      name: 'mailrelay_inbound_proxy_refusals_total',
      help: 'Inbound connections refused for the PROXY protocol, by reason: untrusted_source (a header from outside proxyProtocol.trustedNetworks), timeout (a trusted load balancer sent none), or the header problem (not_proxy, too_long, bad_syntax, bad_address, bad_version, unsupported_family).',
      labelNames: ['reason'] as const, registers,
    }),
    spfResults: new Counter({
      name: 'mailrelay_spf_results_total',
      help: 'SPF (RFC 7208) check results for inbound MAIL FROM/HELO identities.',
      labelNames: ['result'] as const, registers,
    }),
    dsnSent: new Counter({
      name: 'mailrelay_dsn_total',
      help: 'Delivery status notifications generated, by type: bounce (failed) or delay.',
      labelNames: ['type'] as const, registers,
    }),
    tlsSessions: new Counter({
      name: 'mailrelay_tls_sessions_total',
      help: 'Outbound connections by the TLS policy that applied (smarthost, sts-enforce, sts-testing, no-policy) and the TLS outcome: success, or the RFC 8460 (TLS-RPT) failure type; under sts-enforce and the smarthost, a failure means the host was not used.',
      labelNames: ['policy', 'result'] as const, registers,
    }),
    mtaStsFetches: new Counter({
      name: 'mailrelay_mta_sts_policy_fetches_total',
      help: 'MTA-STS (RFC 8461) policy fetches over HTTPS, by result: fetched, or the RFC 8460 type of the failure (sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid).',
      labelNames: ['result'] as const, registers,
    }),
    mtaStsPolicies: new Gauge({
      name: 'mailrelay_mta_sts_policies',
      help: 'MTA-STS policies cached and not expired, by mode (enforce, testing, none).',
      labelNames: ['mode'] as const, registers,
    }),
    draining: new Gauge({
      name: 'mailrelay_draining',
      help: '1 while the relay is draining (refusing new sessions, finishing deliveries), else 0.',
      aggregator: 'max', registers,
    }),
  };
}

/**
 * The primary process of a relay with several workers (relay/cluster.ts): its own process
 * metrics and the supervision counters. /metrics adds every worker's relay metrics to these.
 */
export function createPrimaryMetrics(registry: Registry = new Registry(), opts: { defaultMetrics?: boolean } = {}) {
  const registers = [registry];
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'mailrelay_' });
  return {
    registry,
    workers: new Gauge({
      name: 'mailrelay_workers',
      help: 'Worker processes of a multi-process relay (config workers > 1) that are running, by role: accepting (takes mail) or retiring (only delivers a shard left by a larger workers setting).',
      labelNames: ['role'] as const, registers,
    }),
    workerRestarts: new Counter({
      name: 'mailrelay_worker_restarts_total',
      help: 'Worker processes of a multi-process relay that exited unexpectedly and were started again on the same spool shard.',
      registers,
    }),
  };
}

/** The primary's metric objects. */
export type PrimaryMetrics = ReturnType<typeof createPrimaryMetrics>;

/** The relay's metric objects. */
export type RelayMetrics = ReturnType<typeof declareRelayMetrics>;
