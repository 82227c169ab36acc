// The container's termination message file (Kubernetes terminationMessagePath): where a
// relay that cannot run says why, for the kubelet to copy into the pod status
// (lastState.terminated.message) and the operator into its RelayCrashLooping condition.
import { existsSync, writeFileSync } from 'node:fs';

/**
 * Writes why the relay cannot run to the termination message file. Only a file that
 * exists: Kubernetes creates it for the container; outside a pod there is none, and
 * nothing is created. At most 4 KiB, the kubelet's own limit.
 */
export function writeTerminationMessage(path: string, message: string): void {
  try {
    if (existsSync(path)) writeFileSync(path, Buffer.from(message).subarray(0, 4096));
  } catch {
    // The message is also on stderr; the file is a courtesy.
  }
}
