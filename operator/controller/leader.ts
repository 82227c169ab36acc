// Leader election over a coordination.k8s.io/v1 Lease, as client-go's leaderelection
// package does it (client-node 2.x ships none):
//  - acquire or renew with a resourceVersion-guarded create/replace; 409 means another
//    replica wrote first, so this try lost;
//  - a lease held by someone else counts as expired only once leaseDuration has passed on
//    OUR clock since we last saw its record change (never by comparing renewTime with our
//    clock: the replicas' clocks may disagree);
//  - the leader gives up when it has not renewed within renewDeadline (< leaseDuration),
//    so it stops reconciling before anyone else can take the lease;
//  - on shutdown the leader releases the lease (empty holder), so a successor need not
//    wait for it to expire.
import type { CoordinationV1Api, V1Lease, V1LeaseSpec } from '@kubernetes/client-node';
import { isApiError } from './kube.ts';

/** Timing of leader election, in milliseconds (client-go's defaults: 15 s, 10 s, 2 s). */
export interface LeaderElectionTiming {
  /** How long a lease is valid after its last renewal. */
  leaseDurationMs: number;
  /** The leader steps down when renewing has failed for this long. Must be < leaseDurationMs. */
  renewDeadlineMs: number;
  /** Time between tries to acquire or renew. */
  retryPeriodMs: number;
}

/** client-go's defaults. */
export const DEFAULT_LEADER_ELECTION_TIMING: LeaderElectionTiming = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/** Options of a LeaderElector. */
export interface LeaderElectorOptions extends Partial<LeaderElectionTiming> {
  api: CoordinationV1Api;
  namespace: string;
  /** Lease name. */
  name: string;
  /** This replica's identity (pod name plus a random suffix). */
  identity: string;
  /** Became leader: start reconciling. */
  onStartedLeading: () => void;
  /** Stopped being leader (lost the lease or shutting down): stop reconciling now. Awaited before the lease is released. */
  onStoppedLeading: () => void | Promise<void>;
  /** Errors talking to the API server (they are retried). */
  onError?: (err: unknown) => void;
  /** The clock (ms). */
  now?: () => number;
}

/** metav1.MicroTime as the API server writes it (RFC 3339 with microseconds). */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  if (signal.aborted) return resolve();
  const t = setTimeout(done, ms);
  function done() {
    clearTimeout(t);
    signal.removeEventListener('abort', done);
    resolve();
  }
  signal.addEventListener('abort', done);
});

/** Adds up to 20% jitter, as client-go's wait.JitterUntil, so candidates do not retry in lockstep. */
const jitter = (ms: number) => ms * (1 + Math.random() * 0.2);

/** Campaigns for a Lease and calls back when leadership starts and stops. */
export class LeaderElector {
  private readonly timing: LeaderElectionTiming;
  private readonly now: () => number;
  private readonly stopping = new AbortController();
  private leading = false;
  private loop: Promise<void> | undefined;
  /** The lease record as last seen, and when (our clock) it was seen to change. */
  private observed: { spec: V1LeaseSpec; resourceVersion?: string; at: number } | undefined;

  /** Builds an idle elector; call run(). */
  constructor(private readonly opts: LeaderElectorOptions) {
    this.timing = {
      leaseDurationMs: opts.leaseDurationMs ?? DEFAULT_LEADER_ELECTION_TIMING.leaseDurationMs,
      renewDeadlineMs: opts.renewDeadlineMs ?? DEFAULT_LEADER_ELECTION_TIMING.renewDeadlineMs,
      retryPeriodMs: opts.retryPeriodMs ?? DEFAULT_LEADER_ELECTION_TIMING.retryPeriodMs,
    };
    if (this.timing.renewDeadlineMs >= this.timing.leaseDurationMs) throw new Error('leader election: renewDeadline must be shorter than leaseDuration');
    if (this.timing.retryPeriodMs >= this.timing.renewDeadlineMs) throw new Error('leader election: retryPeriod must be shorter than renewDeadline');
    this.now = opts.now ?? Date.now;
  }

  /** True while this replica holds the lease. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Starts campaigning (acquire, lead, and campaign again after losing) until stop(). */
  run(): void {
    this.loop ??= this.campaign();
  }

  /** Stops campaigning; a leader steps down (onStoppedLeading) and releases the lease. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    if (this.observed?.spec.holderIdentity === this.opts.identity) await this.release();
  }

  private async campaign(): Promise<void> {
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      while (!signal.aborted && !(await this.tryAcquireOrRenew())) await sleep(jitter(this.timing.retryPeriodMs), signal);
      if (signal.aborted) return;
      this.leading = true;
      this.opts.onStartedLeading();
      await this.renewUntilLost(signal);
      this.leading = false;
      await this.opts.onStoppedLeading();
    }
  }

  /** Renews every retryPeriod; returns when renewing has failed for renewDeadline, or on stop. */
  private async renewUntilLost(signal: AbortSignal): Promise<void> {
    let lastRenew = this.now();
    while (!signal.aborted) {
      await sleep(this.timing.retryPeriodMs, signal);
      if (signal.aborted) return;
      const left = this.timing.renewDeadlineMs - (this.now() - lastRenew);
      // A hung request must not keep us leading past the deadline: race it.
      const renewed = left > 0 && await Promise.race([
        this.tryAcquireOrRenew(),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), left).unref()),
      ]);
      if (renewed) lastRenew = this.now();
      else if (this.now() - lastRenew >= this.timing.renewDeadlineMs) return;
    }
  }

  /** One client-go tryAcquireOrRenew: true when this replica holds the lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity } = this.opts;
    const now = this.now();
    const mine = (prev: V1LeaseSpec | undefined): V1LeaseSpec => {
      const keep = prev?.holderIdentity === identity;
      return {
        holderIdentity: identity,
        leaseDurationSeconds: Math.ceil(this.timing.leaseDurationMs / 1000),
        // MicroTime fields go out as strings: client-node has no model for them.
        acquireTime: (keep && prev?.acquireTime ? prev.acquireTime : microTime(now)) as unknown as Date,
        renewTime: microTime(now) as unknown as Date,
        leaseTransitions: keep ? prev?.leaseTransitions ?? 0 : (prev?.leaseTransitions ?? -1) + 1,
      };
    };
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isApiError(err, 404)) return this.failed(err);
      try {
        const created = await api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: mine(undefined) } });
        this.observe(created, now);
        return true;
      } catch (cerr) {
        return isApiError(cerr, 409) ? false : this.failed(cerr);
      }
    }
    const spec = lease.spec ?? {};
    if (!this.observed || JSON.stringify(this.observed.spec) !== JSON.stringify(spec)) this.observe(lease, now);
    const holder = spec.holderIdentity ?? '';
    const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(this.timing.leaseDurationMs / 1000)) * 1000;
    if (holder !== '' && holder !== identity && (this.observed?.at ?? now) + durationMs > now) return false;
    try {
      const updated = await api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: { ...spec, ...mine(spec) } } });
      this.observe(updated, now);
      return true;
    } catch (err) {
      return isApiError(err, 409) ? false : this.failed(err);
    }
  }

  private observe(lease: V1Lease, at: number): void {
    this.observed = { spec: lease.spec ?? {}, resourceVersion: lease.metadata?.resourceVersion, at };
  }

  private failed(err: unknown): false {
    this.opts.onError?.(err);
    return false;
  }

  /** Gives the lease up (client-go's release): empty holder, 1 s duration, same transitions. */
  private async release(): Promise<void> {
    const { api, namespace, name } = this.opts;
    const seen = this.observed;
    if (!seen?.resourceVersion) return;
    const now = microTime(this.now()) as unknown as Date;
    try {
      const released = await api.replaceNamespacedLease({
        name, namespace,
        body: {
          metadata: { name, namespace, resourceVersion: seen.resourceVersion },
          spec: { holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: seen.spec.leaseTransitions ?? 0 },
        },
      });
      this.observe(released, this.now());
    } catch (err) {
      // 409: someone else already holds it. Anything else: it expires by itself.
      if (!isApiError(err, 409)) this.opts.onError?.(err);
    }
  }
}
