#!/usr/bin/env bash
# Builds the mailrelay image from the Dockerfile with buildah, the way CI does it, and puts
# what a release needs beside it in .image/ (or $MAILRELAY_IMAGE_OUT):
#   image.json                 name, id, version, size, the bases used (the smoke test reads it)
#   mailrelay-VERSION.cdx.json CycloneDX SBOM of the node_modules in the image (npm sbom)
#   mailrelay-VERSION.oci.tar  the image as an OCI archive, with --archive (for `skopeo copy`
#                              or `podman load`)
#
# By default the Dockerfile's base images are replaced by local ones of the same layout
# (scripts/image/build-bases.sh), since CI cannot pull from a registry. --registry-bases
# builds against the Dockerfile's defaults instead (a machine that can pull them).
#
# Cached by input: the image is also tagged localhost/mailrelay/builds:<hash of the build
# context, the Dockerfile, the version and the base images>, and a run that finds that tag
# builds nothing. (buildah's own per-step cache, --layers, is not used: with the vfs driver
# every cached step is a full copy of the root filesystem, which made builds slower.)
# One build at a time per machine (flock), so concurrent test files share one build.
#
# Usage: scripts/build-image.sh [--registry-bases] [--archive]    (as root)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/image/common.sh
. "$here/image/common.sh"

registry_bases=0
archive=0
for arg in "$@"; do
  case "$arg" in
    --registry-bases) registry_bases=1 ;;
    --archive) archive=1 ;;
    *) die "unknown argument: $arg (usage: scripts/build-image.sh [--registry-bases] [--archive])" ;;
  esac
done
command -v buildah >/dev/null || die "buildah is not installed (apt-get install buildah)"
out="${MAILRELAY_IMAGE_OUT:-$repo/.image}"
mkdir -p "$out" "$MAILRELAY_CACHE"
exec 9>"$MAILRELAY_CACHE/build-image.lock"
flock 9
start=$SECONDS

cd "$repo"
version="$(node -p "require('./package.json').version")"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain -- Dockerfile package.json package-lock.json tsconfig.json tsconfig.build.json bin relay operator 2>/dev/null)" ]; then
  revision="$revision-dirty"
fi
image="localhost/mailrelay:$version"
# Image and file times are the commit's, so a rebuild of the same commit gives the same image.
created="$(git log -1 --format=%ct 2>/dev/null || echo 0)"

args=(--build-arg "VERSION=$version" --build-arg "REVISION=$revision")
if [ "$registry_bases" = 1 ]; then
  runtime_base="(Dockerfile default)" build_base="(Dockerfile default)"
else
  read -r runtime_base build_base < <("$here/image/build-bases.sh")
  args+=(--pull=never --build-arg "RUNTIME_IMAGE=$runtime_base" --build-arg "BUILD_IMAGE=$build_base")
fi
bases_done=$SECONDS

# Everything the build reads (the files .dockerignore lets into the context that the
# Dockerfile copies), the Dockerfile itself, the version and the bases.
key="$( {
  printf '%s\n' "$version" "$runtime_base" "$build_base"
  if [ "$registry_bases" != 1 ]; then for b in "$runtime_base" "$build_base"; do bh inspect --type image --format "{{.FromImageID}}" "$b"; done; fi
  { printf '%s\n' Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json bin/mailrelay.mjs
    find relay operator -type f ! -name '*.test.ts' ! -path '*/testdata/*'; } | LC_ALL=C sort | xargs sha256sum
} | sha256sum | cut -c1-16)"
cached="localhost/mailrelay/builds:$key"

if has_image "$cached"; then
  log "image: cached ($key)"
  bh tag "$cached" "$image"
else
  # npm in the build stage trusts what this machine trusts (e.g. a TLS-inspecting proxy's
  # CA); a build secret, so it is in no layer.
  ca="${NPM_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}"
  [ -f "$ca" ] && args+=(--secret "id=npm-ca,src=$ca")
  log "image: building $image ($key)"
  bh build --format oci --timestamp "$created" "${args[@]}" -t "$image" -t "$cached" -f Dockerfile . >&2
fi
build_done=$SECONDS

# vfs keeps every image as full copies: keep the three newest builds (other checkouts on this
# machine may be using them) and this week's bases, drop the rest. Best effort: an image a
# running test still has a container of stays.
prune() {
  local keep=3 ref
  bh images --format '{{.Name}}:{{.Tag}} {{.CreatedAtRaw}}' 2>/dev/null | awk '$1 ~ /^localhost\/mailrelay\/builds:/' \
    | sort -k2,3 -r | tail -n +$((keep + 1)) | while read -r ref _; do [ "$ref" = "$cached" ] || bh rmi "$ref" >/dev/null 2>&1 || true; done || true
  if [ "$registry_bases" != 1 ]; then
    bh images --format '{{.Name}}:{{.Tag}}' 2>/dev/null | grep '^localhost/mailrelay-base/' | grep -v ":${runtime_base##*:}\$" \
      | while read -r ref; do bh rmi "$ref" >/dev/null 2>&1 || true; done || true
  fi
  bh rmi --prune >/dev/null 2>&1 || true
}
prune
label() { bh inspect --type image --format "{{index .OCIv1.Config.Labels \"$1\"}}" "$cached"; }
id="$(bh inspect --type image --format '{{.FromImageID}}' "$cached")"

# The SBOM and the rest are functions of the image: done already for this one?
if node -e '
  const [file, id, archive] = process.argv.slice(1);
  const fs = require("fs");
  const info = JSON.parse(fs.readFileSync(file, "utf8"));
  const ok = info.id === id && fs.existsSync(info.sbom) && (archive !== "1" || (info.archive && fs.existsSync(info.archive)));
  process.exit(ok ? 0 : 1);
' "$out/image.json" "$id" "$archive" 2>/dev/null; then
  log "image: $image ($id) up to date; $out/image.json"
  exit 0
fi

# The SBOM describes the node_modules tree inside the image, read from the image itself.
ctr="$(bh from --quiet --pull-never "$image")"
trap 'bh rm "$ctr" >/dev/null 2>&1 || true' EXIT
mnt="$(bh mount "$ctr")"
sbom="$out/mailrelay-$version.cdx.json"
(cd "$mnt/app" && npm sbom --sbom-format cyclonedx --sbom-type application) >"$sbom"
node -e '
  const fs = require("fs");
  const [file, app] = process.argv.slice(1);
  const s = JSON.parse(fs.readFileSync(file, "utf8"));
  if (s.bomFormat !== "CycloneDX" || !(s.components?.length > 0)) throw new Error("SBOM has no components");
  // npm names the root component after its directory (/app); its purl already says mailrelay.
  s.metadata.component.name = JSON.parse(fs.readFileSync(app + "/package.json", "utf8")).name;
  fs.writeFileSync(file, JSON.stringify(s, null, 2) + "\n");
' "$sbom" "$mnt/app"
# The size a node stores once pulled: the unpacked root filesystem.
size="$(du -sb "$mnt" | cut -f1)"
bh rm "$ctr" >/dev/null
trap - EXIT

archive_file=""
compressed=""
if [ "$archive" = 1 ]; then
  archive_file="$out/mailrelay-$version.oci.tar"
  rm -f "$archive_file"
  bh push --quiet --compression-format gzip "$image" "oci-archive:$archive_file:ghcr.io/mailrelay/mailrelay:$version" >&2
  compressed="$(stat -c %s "$archive_file")"
fi

node -e '
  const [file, ...v] = process.argv.slice(1);
  const [image, id, version, revision, size, runtimeBase, buildBase, sbom, archive, compressed, root] = v;
  // version and revision as the image labels say (a cached image may come from another checkout of the same sources).
  const info = { image, id, version, revision, sizeBytes: Number(size), runtimeBase, buildBase, sbom,
    archive: archive || null, archiveBytes: compressed ? Number(compressed) : null,
    buildah: { root: `${root}/storage`, runroot: `${root}/run`, storageDriver: "vfs", isolation: "chroot" } };
  require("fs").writeFileSync(file, JSON.stringify(info, null, 2) + "\n");
' "$out/image.json" "$image" "$id" "$(label org.opencontainers.image.version)" "$(label org.opencontainers.image.revision)" "$size" "$runtime_base" "$build_base" "$sbom" "$archive_file" "$compressed" "$MAILRELAY_BUILDAH_ROOT"
log "image: $image ($id) $((size / 1000000)) MB uncompressed${compressed:+, $((compressed / 1000000)) MB as a gzip OCI archive}"
log "image: bases $((bases_done - start)) s, build $((build_done - bases_done)) s, total $((SECONDS - start)) s; $out/image.json"
