// The pod template's mailrelay.io/config-hash: one digest over everything a relay
// reads at start that is not in the pod spec itself, i.e. the rendered relay.yaml and
// the referenced Secret keys. A change in either changes the template, so the
// StatefulSet rolls the pods; a rotated certificate reaches every relay this way.
import { createHash } from 'node:crypto';
import { referencedSecretKeys, type MailRelayInputs } from '../api/inputs.ts';
import { withDefaults, type MailRelay } from '../api/mailrelay.ts';
import { renderRelayYaml } from './configmap.ts';

/** Annotation on the pod template carrying the hash. */
export const CONFIG_HASH_ANNOTATION = 'mailrelay.io/config-hash';

/** sha256 (hex) of relay.yaml and of the digests of the Secret keys it references (only those keys: unrelated keys may change freely). */
export function computeConfigHash(mr: Pick<MailRelay, 'metadata' | 'spec'>, inputs: Pick<MailRelayInputs, 'secrets'>): string {
  const refs = referencedSecretKeys(withDefaults(mr.spec));
  const secrets = refs.map((r) => [r.name, r.key, inputs.secrets[r.name]?.keys[r.key] ?? null]);
  return createHash('sha256').update(JSON.stringify({ relayYaml: renderRelayYaml(mr, inputs), secrets })).digest('hex');
}
