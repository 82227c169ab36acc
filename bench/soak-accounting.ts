// The soak's accounting, PURE: from what the senders had acknowledged and what the peer
// received, decide for every acknowledged recipient whether it was delivered or bounced
// (a DSN back to its sender that names it and quotes the reply), and compute latencies.

/** A message the relay acknowledged with 250. */
export interface AckedMessage {
  token: string;
  from: string;
  rcpts: string[];
  /** ms epoch when the 250 arrived at the sender. */
  ackedAt: number;
}

/** What the peer recorded for one transaction (FaultTransaction plus our receive time). */
export interface PeerTransaction {
  from: string;
  rcptAccepted: string[];
  data: Buffer | undefined;
  dataReply: string | undefined;
  /** ms epoch when the peer had the whole message (just before its final reply); undefined if never. */
  receivedAt: number | undefined;
}

/** The result of the accounting. */
export interface Accounting {
  acknowledgedMessages: number;
  acknowledgedRcpts: number;
  delivered: number;
  bounced: number;
  /** Bounced recipients by the status code their DSN gave. */
  bouncedByStatus: Record<string, number>;
  /** Bounced recipients whose DSN block quotes no remote reply (no Diagnostic-Code). */
  bouncedWithoutReply: string[];
  /** Recipients neither delivered nor bounced: each one fails the soak. */
  unaccounted: string[];
  /** Recipients the peer accepted more than once (a 250 to more than one copy). */
  duplicates: string[];
  /** Both delivered and bounced. */
  deliveredAndBounced: string[];
  /** ms from the sender's 250 to the peer holding the message, per delivered recipient (first copy). */
  latenciesMs: number[];
  /** Latencies below zero (the peer had the message before the sender read the 250), clamped to 0. */
  negativeLatencies: number[];
}

const TOKEN_RE = /^X-Soak-Token: (\S+)\r?$/m;
const lower = (s: string) => s.toLowerCase();

/** Accounts for every acknowledged recipient against the peer's transactions. */
export function account(acked: readonly AckedMessage[], peer: readonly PeerTransaction[]): Accounting {
  const delivered = new Map<string, { count: number; at: number }>(); // key token\0rcpt
  const bounced = new Map<string, { status: string; diagnostic: boolean }>();
  for (const tx of peer) {
    if (!tx.data || !tx.dataReply?.startsWith('250')) continue;
    const text = tx.data.toString('latin1');
    const token = TOKEN_RE.exec(text)?.[1];
    if (!token) continue;
    if (tx.from === '') {
      // A DSN (RFC 3464): one per-recipient block per failed recipient, each with its status
      // and the remote reply quoted in Diagnostic-Code (or 4.4.7 when it expired).
      for (const block of text.split(/\r\n\r\n/)) {
        const rcpt = /^Final-Recipient: *rfc822; *(\S+)\r?$/im.exec(block)?.[1];
        const status = /^Status: *(\d\.\d{1,3}\.\d{1,3})/im.exec(block)?.[1];
        const action = /^Action: *(\S+)/im.exec(block)?.[1];
        const diagnostic = /^Diagnostic-Code: *smtp; *\d{3}/im.test(block);
        if (rcpt && status && action?.toLowerCase() === 'failed') bounced.set(`${token}\0${lower(rcpt)}`, { status, diagnostic });
      }
      continue;
    }
    for (const r of tx.rcptAccepted) {
      const key = `${token}\0${lower(r)}`;
      const d = delivered.get(key);
      if (d) d.count++;
      else delivered.set(key, { count: 1, at: tx.receivedAt ?? Number.NaN });
    }
  }
  const out: Accounting = {
    acknowledgedMessages: acked.length, acknowledgedRcpts: 0, delivered: 0, bounced: 0, bouncedByStatus: {}, bouncedWithoutReply: [],
    unaccounted: [], duplicates: [], deliveredAndBounced: [], latenciesMs: [], negativeLatencies: [],
  };
  for (const m of acked) {
    for (const r of m.rcpts) {
      out.acknowledgedRcpts++;
      const key = `${m.token}\0${lower(r)}`;
      const d = delivered.get(key);
      const b = bounced.get(key);
      if (d && b) out.deliveredAndBounced.push(`${m.token} ${r}`);
      if (d) {
        out.delivered++;
        if (d.count > 1) out.duplicates.push(`${m.token} ${r} x${d.count}`);
        const lat = d.at - m.ackedAt;
        if (Number.isFinite(lat)) {
          if (lat < 0) out.negativeLatencies.push(lat);
          out.latenciesMs.push(Math.max(0, lat));
        }
      } else if (b) {
        out.bounced++;
        out.bouncedByStatus[b.status] = (out.bouncedByStatus[b.status] ?? 0) + 1;
        if (!b.diagnostic) out.bouncedWithoutReply.push(`${m.token} ${r} (${b.status})`);
      } else {
        out.unaccounted.push(`${m.token} ${r}`);
      }
    }
  }
  return out;
}

/** The p-th percentile (0-100) of the values, nearest rank; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}
