// The relay image: spec.image fields over the operator's own image, since one image
// runs both `mailrelay operator` and `mailrelay relay`.
import type { MailRelaySpecDefaulted } from '../api/mailrelay.ts';

/** An image reference split into its parts. */
export interface ImageParts {
  /** Registry and path, e.g. ghcr.io/mailrelay/mailrelay. */
  repository: string;
  /** Tag, if any. */
  tag?: string;
  /** Digest (sha256:...), if any. */
  digest?: string;
}

/** Splits "registry:5000/repo:tag@sha256:..." into repository, tag and digest. */
export function parseImageReference(ref: string): ImageParts {
  const [nameTag = '', digest] = ref.split('@', 2);
  const slash = nameTag.lastIndexOf('/');
  const colon = nameTag.lastIndexOf(':');
  const parts: ImageParts = colon > slash ? { repository: nameTag.slice(0, colon), tag: nameTag.slice(colon + 1) } : { repository: nameTag };
  if (digest) parts.digest = digest;
  return parts;
}

/**
 * The image reference for the relay container. Unset fields come from the operator's
 * image; a tag or digest set in the spec replaces both of the default's (a default
 * digest next to a user's tag would silently win over the tag at pull time).
 */
export function relayImage(image: MailRelaySpecDefaulted['image'], defaultImage: string): string {
  const base = parseImageReference(defaultImage);
  const repository = image?.repository ?? base.repository;
  const pinned = image?.tag !== undefined || image?.digest !== undefined;
  const tag = pinned ? image?.tag : base.tag;
  const digest = pinned ? image?.digest : base.digest;
  return `${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
}
