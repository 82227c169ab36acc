// Kubernetes Events (core/v1) about MailRelays, aggregated like client-go's
// EventCorrelator: the same (object, type, reason, message) seen again within the
// aggregation window bumps count and lastTimestamp of the existing Event instead of
// creating another, and those bumps are written at most once per minInterval (pending
// counts ride along with the next write). A reconcile loop therefore cannot fill etcd
// with one Event per run, and `kubectl describe` shows "x12 over 5m".
import { randomBytes } from 'node:crypto';
import type { CoreV1Api, CoreV1Event } from '@kubernetes/client-node';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { API_VERSION, KIND } from '../api/mailrelay.ts';

/** Normal for what was done, Warning for what went wrong. */
export type EventType = 'Normal' | 'Warning';

/** The object an Event is about. */
export interface InvolvedObject {
  name: string;
  namespace: string;
  uid?: string;
  resourceVersion?: string;
}

/** Options of an EventRecorder. */
export interface EventRecorderOptions {
  api: CoreV1Api;
  /** source.component / reportingComponent. */
  component?: string;
  /** reportingInstance: this replica's identity. */
  instance?: string;
  /** Identical events within this window are aggregated into one (default 10 min). */
  aggregateWindowMs?: number;
  /** Shortest time between two writes of one aggregated Event (default 60 s). */
  minIntervalMs?: number;
  /** The clock. */
  now?: () => number;
  /** Errors writing Events (never thrown: an Event is not worth failing a reconcile for). */
  onError?: (err: unknown) => void;
}

interface Aggregate {
  name: string;
  namespace: string;
  count: number;
  written: number;
  first: number;
  last: number;
  lastWrite: number;
}

const MAX_MESSAGE = 1024;
const MAX_TRACKED = 4096;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Writes aggregated core/v1 Events about MailRelays. */
export class EventRecorder {
  private readonly seen = new Map<string, Aggregate>();
  private readonly window: number;
  private readonly minInterval: number;
  private readonly now: () => number;
  private readonly component: string;

  /** Builds a recorder writing through `opts.api`. */
  constructor(private readonly opts: EventRecorderOptions) {
    this.window = opts.aggregateWindowMs ?? 600_000;
    this.minInterval = opts.minIntervalMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    this.component = opts.component ?? 'mailrelay-operator';
  }

  /** Records an Event about a MailRelay; resolves when written (or skipped by aggregation). Never throws. */
  async record(obj: InvolvedObject, type: EventType, reason: string, message: string): Promise<void> {
    const msg = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message;
    const key = JSON.stringify([obj.namespace, obj.name, obj.uid ?? '', type, reason, msg]);
    const now = this.now();
    const agg = this.seen.get(key);
    try {
      if (agg && now - agg.last < this.window) {
        agg.count++;
        agg.last = now;
        if (now - agg.lastWrite < this.minInterval) return;
        await this.opts.api.patchNamespacedEvent({
          name: agg.name, namespace: agg.namespace,
          body: { count: agg.count, lastTimestamp: new Date(now).toISOString() },
        }, mergePatch);
        agg.written = agg.count;
        agg.lastWrite = now;
        return;
      }
      const name = `${obj.name}.${randomBytes(8).toString('hex')}`;
      const ts = new Date(now);
      const body: CoreV1Event = {
        metadata: { name, namespace: obj.namespace },
        involvedObject: { apiVersion: API_VERSION, kind: KIND, name: obj.name, namespace: obj.namespace, ...(obj.uid ? { uid: obj.uid } : {}), ...(obj.resourceVersion ? { resourceVersion: obj.resourceVersion } : {}) },
        type, reason, message: msg,
        count: 1,
        firstTimestamp: ts,
        lastTimestamp: ts,
        source: { component: this.component },
        reportingComponent: `mailrelay.io/${this.component}`,
        ...(this.opts.instance ? { reportingInstance: this.opts.instance } : {}),
      };
      this.remember(key, { name, namespace: obj.namespace, count: 1, written: 1, first: now, last: now, lastWrite: now });
      await this.opts.api.createNamespacedEvent({ namespace: obj.namespace, body });
    } catch (err) {
      this.opts.onError?.(err);
    }
  }

  /** Forgets the aggregates of a deleted MailRelay. */
  forget(namespace: string, name: string): void {
    for (const key of this.seen.keys()) {
      const [ns, n] = JSON.parse(key) as [string, string];
      if (ns === namespace && n === name) this.seen.delete(key);
    }
  }

  private remember(key: string, agg: Aggregate): void {
    if (this.seen.size >= MAX_TRACKED) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    this.seen.set(key, agg);
  }
}
