// The queue operations behind the queue API: list and show read the spool; retry, hold,
// release and delete change messages through the scheduler (relay/scheduler), which keeps
// every change clear of a delivery of the same message, and through the spool's durable
// records (hold/release/remove, state updates), so each survives a crash once answered.
import { MessageNotFoundError } from '../spool/errors.ts';
import type { Spool } from '../spool/index.ts';
import { MessageBusyError, type Scheduler } from '../scheduler/scheduler.ts';
import type {
  QueueAction, QueueActionResponse, QueueActionResult, QueueFilter, QueueListResponse, QueueMessageDetail, QueueSelection,
} from './types.ts';
import { domainOf, indexMatches, listEntry, messageDetail, messageMatches, openDestinations } from './view.ts';

/** Most messages one list answers with unless the caller asks for fewer. */
export const DEFAULT_LIST_LIMIT = 1000;

/** Queue operations on one relay's spool and scheduler. */
export class QueueAdmin {
  constructor(private readonly spool: Spool, private readonly scheduler: Scheduler, private readonly clock: () => number = Date.now) {}

  /** Messages matching the filter, oldest first. Reads each candidate's record only when the filter or the answer needs it. */
  async list(f: QueueFilter): Promise<QueueListResponse> {
    const now = this.clock();
    const limit = Math.max(1, f.limit ?? DEFAULT_LIST_LIMIT);
    const stats = this.spool.stats().byState;
    const res: QueueListResponse = { messages: [], counts: { queued: stats.queued, deferred: stats.deferred, held: stats.held }, truncated: false };
    for (const item of this.spool.list()) {
      if (!indexMatches(item, f, now)) continue;
      const msg = await this.loadOrSkip(item.id);
      if (msg === undefined || !messageMatches(msg, f)) continue;
      if (res.messages.length === limit) {
        res.truncated = true;
        break;
      }
      res.messages.push(listEntry(msg, item.state, this.scheduler.delivering(item.id), now));
    }
    return res;
  }

  /** One message in full; throws MessageNotFoundError. */
  async show(id: string): Promise<QueueMessageDetail> {
    const msg = await this.spool.load(id);
    return messageDetail(msg, this.spool.stateOf(id) ?? 'queued', this.scheduler.delivering(id), this.clock());
  }

  /** Applies an action to the selected messages, one at a time; one outcome per message. */
  async act(action: QueueAction, sel: QueueSelection): Promise<QueueActionResponse> {
    const results: QueueActionResult[] = [];
    for (const id of await this.select(sel)) results.push(await this.actOn(action, id, sel));
    return { action, results };
  }

  private async actOn(action: QueueAction, id: string, sel: QueueSelection): Promise<QueueActionResult> {
    const { spool, scheduler } = this;
    const only = sel.destination === undefined ? undefined : (a: string) => domainOf(a) === sel.destination!.toLowerCase();
    try {
      return await scheduler.exclusive(id, async (): Promise<QueueActionResult> => {
        switch (action) {
          case 'retry': {
            const r = await scheduler.retryNow(id, only);
            if (r === 'held') return { id, result: 'skipped', detail: 'held' };
            if (r === 'nothing_deferred') return { id, result: 'skipped', detail: 'nothing deferred' };
            return { id, result: 'retrying' };
          }
          case 'hold':
            await spool.hold(id, this.clock());
            return { id, result: 'held' };
          case 'release':
            await spool.release(id);
            return { id, result: 'released' };
          case 'delete':
            if (sel.dsn) {
              const n = await scheduler.failAll(id);
              return n > 0 ? { id, result: 'bounced' } : { id, result: 'deleted' };
            }
            await spool.remove(id);
            return { id, result: 'deleted' };
        }
      });
    } catch (err) {
      if (err instanceof MessageNotFoundError) return { id, result: 'not_found' };
      if (err instanceof MessageBusyError) return { id, result: 'busy', detail: 'being delivered; try again' };
      return { id, result: 'error', detail: (err as Error).message };
    }
  }

  // The ids a selection names: given ids as they are (unknown ones answer not_found), every
  // message, or those with an unfinished recipient at a destination.
  private async select(sel: QueueSelection): Promise<string[]> {
    if (sel.ids !== undefined) return [...new Set(sel.ids)];
    const all = this.spool.list().map((e) => e.id);
    if (sel.all) return all;
    const dest = (sel.destination ?? '').toLowerCase();
    const out: string[] = [];
    for (const id of all) {
      const msg = await this.loadOrSkip(id);
      if (msg !== undefined && openDestinations(msg).includes(dest)) out.push(id);
    }
    return out;
  }

  // A message can complete between listing and reading it: that is not an error.
  private async loadOrSkip(id: string) {
    try {
      return await this.spool.load(id);
    } catch (err) {
      if (err instanceof MessageNotFoundError) return undefined;
      throw err;
    }
  }
}
