// PURE: how the queue API and the CLI present spooled messages: list entries and details
// from a QueuedMessage, the filters of `queue list`, and the text the CLI prints (a table
// in the spirit of Postfix's mailq, one block per message for `queue show`).
import type { QueuedMessage } from '../spool/record.ts';
import type {
  QueueActionResponse, QueueFilter, QueueListEntry, QueueListResponse, QueueMessageDetail, QueueRecipientDetail, QueueState, RecipientCounts,
} from './types.ts';

/** The destination of a recipient: its domain, lower-cased ("" without an @). */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

const iso = (ms: number): string => new Date(ms).toISOString();

function counts(msg: QueuedMessage): RecipientCounts {
  const c: RecipientCounts = { total: msg.recipients.length, pending: 0, deferred: 0, delivered: 0, failed: 0 };
  for (const r of msg.recipients) c[r.state.state]++;
  return c;
}

/** Domains that still have work: recipients pending or deferred. */
export function openDestinations(msg: QueuedMessage): string[] {
  const out = new Set<string>();
  for (const r of msg.recipients) if (r.state.state === 'pending' || r.state.state === 'deferred') out.add(domainOf(r.address));
  return [...out].sort();
}

/** One `queue list` line for a message. */
export function listEntry(msg: QueuedMessage, state: QueueState, delivering: boolean, now: number): QueueListEntry {
  let next: { at: number; reply: string } | undefined;
  for (const r of msg.recipients) {
    if (r.state.state === 'deferred' && (next === undefined || r.state.nextAttemptAt < next.at)) next = { at: r.state.nextAttemptAt, reply: r.state.lastReply };
  }
  const e: QueueListEntry = {
    id: msg.id, state, delivering, receivedAt: iso(msg.receivedAt), ageSeconds: Math.max(0, Math.floor((now - msg.receivedAt) / 1000)),
    size: msg.size, from: msg.from, recipients: counts(msg), destinations: openDestinations(msg),
  };
  if (next !== undefined && state !== 'queued') e.nextAttemptAt = iso(next.at);
  if (next !== undefined) e.lastReply = next.reply;
  if (msg.heldAt !== undefined) e.heldAt = iso(msg.heldAt);
  return e;
}

/** `queue show`: the envelope and every recipient's state. */
export function messageDetail(msg: QueuedMessage, state: QueueState, delivering: boolean, now: number): QueueMessageDetail {
  const { recipients: recipientCounts, ...entry } = listEntry(msg, state, delivering, now);
  const recipients = msg.recipients.map((r): QueueRecipientDetail => {
    const s = r.state;
    const d: QueueRecipientDetail = { address: r.address, state: s.state, attempts: s.state === 'pending' ? 0 : s.attempts };
    if (r.notify) d.notify = [...r.notify];
    if (r.orcpt !== undefined) d.orcpt = r.orcpt;
    if (s.state === 'deferred') Object.assign(d, { nextAttemptAt: iso(s.nextAttemptAt), lastReply: s.lastReply, reason: s.reason });
    if (s.state === 'delivered') Object.assign(d, { reply: s.reply, at: iso(s.at) });
    if (s.state === 'failed') Object.assign(d, { reply: s.reply, at: iso(s.at), reason: s.reason });
    return d;
  });
  const out: QueueMessageDetail = { ...entry, recipientCounts, recipients };
  for (const k of ['clientAddress', 'heloName', 'authUser', 'envid', 'ret', 'bodyType', 'smtputf8'] as const) {
    if (msg[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = msg[k];
  }
  return out;
}

/** Whether what the index knows (state, arrival) passes the filter; cheap, no disk read. */
export function indexMatches(item: { state: QueueState; receivedAt: number }, f: QueueFilter, now: number): boolean {
  if (f.state !== undefined && item.state !== f.state) return false;
  if (f.olderThanSeconds !== undefined && now - item.receivedAt < f.olderThanSeconds * 1000) return false;
  return true;
}

/** Whether the message passes the filter's sender and destination parts. */
export function messageMatches(msg: QueuedMessage, f: QueueFilter): boolean {
  if (f.sender !== undefined) {
    const want = f.sender.toLowerCase();
    if (want === '<>' ? msg.from !== '' : !msg.from.toLowerCase().includes(want)) return false;
  }
  if (f.destination !== undefined && !openDestinations(msg).includes(f.destination.toLowerCase())) return false;
  return true;
}

/** "45s", "12m5s", "3h20m", "2d4h": two units at most, like a human reads an age. */
export function formatSeconds(s: number): string {
  const t = Math.max(0, Math.round(s));
  const units: [string, number][] = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  const i = units.findIndex(([, n]) => t >= n);
  if (i < 0) return '0s';
  const [u1, n1] = units[i]!;
  const v1 = Math.floor(t / n1);
  const second = units[i + 1];
  const v2 = second === undefined ? 0 : Math.floor((t - v1 * n1) / second[1]);
  return v2 > 0 ? `${v1}${u1}${v2}${second![0]}` : `${v1}${u1}`;
}

function formatSize(n: number): string {
  if (n < 1024) return String(n);
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)}K`;
  return `${(n / 1024 / 1024).toFixed(1)}M`;
}

function next(e: QueueListEntry, now: number): string {
  if (e.state === 'held') return 'held';
  if (e.delivering) return 'sending';
  if (e.nextAttemptAt === undefined) return 'now';
  const ms = Date.parse(e.nextAttemptAt) - now;
  return ms <= 0 ? 'now' : `in ${formatSeconds(ms / 1000)}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** `queue list` as text: one line per message (RCPTS = recipients still to deliver / all), then a count. */
export function formatList(res: QueueListResponse, now: number): string {
  const rows = [['ID', 'STATE', 'AGE', 'SIZE', 'RCPTS', 'FROM', 'NEXT', 'LAST REPLY']];
  for (const e of res.messages) {
    const left = e.recipients.pending + e.recipients.deferred;
    rows.push([e.id, e.state, formatSeconds(e.ageSeconds), formatSize(e.size), `${left}/${e.recipients.total}`, e.from === '' ? '<>' : e.from, next(e, now), (e.lastReply ?? '').replace(/\s+/g, ' ')]);
  }
  const c = res.counts;
  const total = c.queued + c.deferred + c.held;
  const shown = res.truncated ? ` (showing the oldest ${res.messages.length})` : '';
  return `${table(rows)}\n-- ${total} message${total === 1 ? '' : 's'} (queued ${c.queued}, deferred ${c.deferred}, held ${c.held})${shown}\n`;
}

/** `queue show` as text. */
export function formatDetail(d: QueueMessageDetail, now: number): string {
  const ago = (t: string) => `${t} (${formatSeconds((now - Date.parse(t)) / 1000)} ago)`;
  const lines = [
    `message   ${d.id}`,
    `state     ${d.state}${d.heldAt ? ` since ${ago(d.heldAt)}` : ''}${d.delivering ? ', being delivered now' : ''}`,
    `received  ${ago(d.receivedAt)}${d.clientAddress ? ` from ${d.clientAddress}` : ''}${d.heloName ? ` (helo ${d.heloName})` : ''}${d.authUser ? ` as ${d.authUser}` : ''}`,
    `from      <${d.from}>`,
    `size      ${d.size} bytes${d.bodyType ? `, ${d.bodyType}` : ''}${d.smtputf8 ? ', SMTPUTF8' : ''}${d.envid ? `, ENVID ${d.envid}` : ''}${d.ret ? `, RET ${d.ret}` : ''}`,
    `recipients (${d.recipientCounts.pending + d.recipientCounts.deferred} of ${d.recipientCounts.total} still to deliver):`,
  ];
  const rows = d.recipients.map((r) => {
    const when = r.state === 'deferred' && r.nextAttemptAt
      ? `next ${r.nextAttemptAt} (${Date.parse(r.nextAttemptAt) <= now ? 'due' : `in ${formatSeconds((Date.parse(r.nextAttemptAt) - now) / 1000)}`})`
      : r.at ? `at ${r.at}` : '';
    return [`  ${r.address}`, r.state, `attempts ${r.attempts}`, when, (r.lastReply ?? r.reply ?? '').replace(/\s+/g, ' ')];
  });
  return `${lines.join('\n')}\n${table(rows)}\n`;
}

const OUTCOME_TEXT: Record<string, string> = {
  retrying: 'retrying now', held: 'held', released: 'released', deleted: 'deleted', bounced: 'deleted, bounce sent',
  not_found: 'no such message in the queue', skipped: 'skipped', busy: 'busy', error: 'error',
};

/** An action's per-message outcomes, one line each. */
export function formatActionResults(res: QueueActionResponse): string {
  if (res.results.length === 0) return `${res.action}: no message matched\n`;
  return res.results.map((r) => `${r.id}: ${OUTCOME_TEXT[r.result] ?? r.result}${r.detail ? ` (${r.detail})` : ''}\n`).join('');
}
