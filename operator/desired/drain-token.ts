// The drain-token Secret (ADR 0003 R2): the bearer token other hosts (the operator) must
// present to a relay's /drain. The controller creates it once with a random token and
// never rotates it; the pods mount its key optional as http.drainTokenFile. Not part of
// buildDesired: its content is random, so applying it on every reconcile would rotate it.
import type { MailRelay } from '../api/mailrelay.ts';
import { DRAIN_TOKEN_KEY } from './layout.ts';
import { childMeta, type KubeObject } from './meta.ts';
import { childNames } from './names.ts';

/** The drain-token Secret of a MailRelay carrying `token` (the caller generates it). Pure. */
export function buildDrainTokenSecret(mr: Pick<MailRelay, 'metadata'>, token: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: childMeta(mr, childNames(mr).drainTokenSecret),
    type: 'Opaque',
    data: { [DRAIN_TOKEN_KEY]: Buffer.from(token, 'utf8').toString('base64') },
  };
}
