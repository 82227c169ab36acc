// What the operator can see going wrong with the relay pods and their spools, pure:
// (pods' /status readings, the Pod and PVC objects, now) -> problems for the Degraded
// condition and its Events (docs/adr/0009-autoscaling.md, "Healing"). The operator
// reports; it deletes nothing: a damaged spool or a full volume holds mail that a person
// must decide about. The one remedy it applies itself is a scale-up (the autoscaler's
// SpoolFull/SpoolUnwritable signal), when autoscaling allows it.
import type { MailRelayStatus } from '../api/mailrelay.ts';
import type { PodReading } from '../autoscaling/decide.ts';

/** Reasons of Degraded that healing adds. */
export type HealingReason = 'SpoolFull' | 'SpoolUnwritable' | 'StoragePending' | 'RelayCrashLooping';

/** One problem for Degraded. */
export interface HealingProblem {
  reason: HealingReason;
  message: string;
}

/** A spool PVC Pending longer than this is reported (binding a local or cloud volume takes seconds, not minutes). */
export const PVC_PENDING_AFTER_SECONDS = 120;
/** Restarts after which a pod that is not running is called crash-looping (the kubelet's CrashLoopBackOff says so earlier). */
export const CRASH_LOOP_RESTARTS = 3;

/** The Pod fields healing reads (wire JSON). */
export interface PodLike {
  metadata: { name: string };
  status?: {
    containerStatuses?: {
      name: string;
      restartCount?: number;
      ready?: boolean;
      state?: { waiting?: { reason?: string }; running?: object; terminated?: object };
      lastState?: { terminated?: { exitCode?: number; reason?: string; message?: string } };
    }[];
  };
}

/** The PVC fields healing reads (wire JSON). */
export interface PvcLike {
  metadata: { name: string; creationTimestamp?: string };
  spec?: { storageClassName?: string | null };
  status?: { phase?: string };
}

/** Inputs of findHealingProblems. */
export interface HealingInput {
  /** The relay pods by ordinal, with their /status readings where read. */
  readings: readonly (PodReading & { name: string })[];
  /** The relay pods (any phase). */
  pods: readonly PodLike[];
  /** The relay's spool PVCs. */
  claims: readonly PvcLike[];
  now: Date;
}

/** The problems, in a stable order: spools, storage, crash loops. */
export function findHealingProblems(input: HealingInput): HealingProblem[] {
  const out: HealingProblem[] = [];
  for (const problem of ['full', 'unwritable'] as const) {
    const bad = input.readings.filter((r) => r.status?.spool.problem === problem);
    if (bad.length === 0) continue;
    out.push({
      reason: problem === 'full' ? 'SpoolFull' : 'SpoolUnwritable',
      message: `${bad.map((r) => `pod ${r.name}: ${r.status?.spool.message ?? `spool ${problem}`}`).join('; ')}; the pod refuses new mail until its spool takes writes again (it is not Ready)${problem === 'full' ? '; raise spec.spool.size (a new StatefulSet) or let the queue drain' : '; check the volume (read-only remount, permissions)'}`,
    });
  }
  const pending = input.claims
    .filter((c) => c.status?.phase === 'Pending' && c.metadata.creationTimestamp !== undefined
      && input.now.getTime() - Date.parse(c.metadata.creationTimestamp) >= PVC_PENDING_AFTER_SECONDS * 1000)
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  if (pending.length > 0) {
    const classes = [...new Set(pending.map((c) => c.spec?.storageClassName ?? ''))];
    const named = classes.map((c) => (c === '' ? 'the cluster\'s default StorageClass (storageClassName unset)' : `StorageClass ${c}`)).join(', ');
    out.push({
      reason: 'StoragePending',
      message: `spool PVCs ${pending.map((c) => c.metadata.name).join(', ')} have been Pending for more than ${PVC_PENDING_AFTER_SECONDS} s; their pods cannot start. They ask ${named}: check that it exists and can provision (kubectl describe pvc ${pending[0]?.metadata.name})`,
    });
  }
  const looping = input.pods.flatMap((p) => {
    const c = p.status?.containerStatuses?.find((s) => s.name === 'relay') ?? p.status?.containerStatuses?.[0];
    if (!c) return [];
    const backoff = c.state?.waiting?.reason === 'CrashLoopBackOff';
    if (!backoff && !((c.restartCount ?? 0) >= CRASH_LOOP_RESTARTS && c.ready !== true)) return [];
    const last = c.lastState?.terminated;
    const said = last?.message?.trim();
    return [`pod ${p.metadata.name} restarted ${c.restartCount ?? 0} times; last exit ${last?.exitCode ?? '?'}${said ? `: ${said}` : last?.reason ? ` (${last.reason})` : ''}`];
  });
  if (looping.length > 0) {
    out.push({ reason: 'RelayCrashLooping', message: `${looping.join('; ')}. Nothing is deleted automatically: a damaged spool may still hold mail (docs/troubleshooting.md)` });
  }
  return out;
}

/** status.queue: the readings summed over every pod that answered (draining ones too: their mail is still queued). */
export function buildQueueStatus(readings: readonly (PodReading & { name: string; running: boolean })[], now: Date): MailRelayStatus['queue'] {
  const answered = readings.filter((r) => r.status);
  const unreachable = readings.filter((r) => r.running && !r.status).map((r) => r.name).sort();
  if (answered.length === 0 && unreachable.length === 0) return undefined;
  let messages = 0;
  let queued = 0;
  let deferred = 0;
  let oldest: number | null = null;
  let oldestQueued: number | null = null;
  for (const { status: s } of answered) {
    if (!s) continue;
    messages += s.queue.messages;
    queued += s.queue.queued;
    deferred += s.queue.deferred;
    if (s.queue.oldestAgeSeconds !== null) oldest = Math.max(oldest ?? 0, s.queue.oldestAgeSeconds);
    if (s.queue.oldestQueuedAgeSeconds !== null) oldestQueued = Math.max(oldestQueued ?? 0, s.queue.oldestQueuedAgeSeconds);
  }
  // A time, not an age: the Oldest printer column (type date) ages it without a status write.
  // Whole seconds, so two reads of the same message do not differ by the milliseconds of a request.
  const at = (age: number) => new Date(Math.floor((now.getTime() - age * 1000) / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const q: NonNullable<MailRelayStatus['queue']> = { messages, queued, deferred, pods: answered.length };
  if (oldest !== null) q.oldestMessageTime = at(oldest);
  if (oldestQueued !== null) q.oldestQueuedMessageTime = at(oldestQueued);
  if (unreachable.length > 0) q.unreachablePods = unreachable;
  return q;
}
