// client-node serialises built-in kinds through its generated models, whose property
// names differ from the wire names where the wire name is a JS keyword or has a dash
// (NetworkPolicy rules' `from` is `_from`); a wire-format object handed to
// KubernetesObjectApi would lose those fields without a word. So each object is first
// turned into client-node's model form (loadYaml deserialises by apiVersion/kind) and
// the round trip back to the wire is checked to be lossless: a field client-node does
// not know (a newer API field) fails loudly instead of being dropped.
import { dumpYaml, loadYaml, type KubernetesObject } from '@kubernetes/client-node';
import { parse } from 'yaml';
import type { KubeObject } from '../desired/meta.ts';
import { firstDifference } from './compare.ts';

/** client-node would not send the object as built: serialising its model form loses or changes a field. */
export class LossySerializationError extends Error {
  /** Names the object and the first field that does not survive. */
  constructor(readonly object: string, readonly field: string) {
    super(`${object}: @kubernetes/client-node cannot serialise field ${field} (unknown to its model); refusing to apply a partial object`);
    this.name = 'LossySerializationError';
  }
}

/** The object in client-node's model form, ready for KubernetesObjectApi; throws LossySerializationError if the wire form would change. */
export function toClientModel(obj: KubeObject): KubernetesObject {
  const wire = JSON.parse(JSON.stringify(obj)) as KubeObject;
  const model = loadYaml<KubernetesObject>(JSON.stringify(wire));
  const back = parse(dumpYaml(model)) as unknown;
  const there = firstDifference(wire, back);
  const extra = firstDifference(back, wire);
  if (there !== undefined || extra !== undefined) {
    throw new LossySerializationError(`${obj.kind} ${obj.metadata.namespace ?? ''}/${obj.metadata.name}`, there ?? extra ?? '(root)');
  }
  return model;
}
