# Shared by scripts/image/*.sh (sourced): where the image tooling keeps its state, and buildah
# run the one way that works on the CI machines (vfs storage, chroot isolation: no overlay
# mounts and no OCI runtime needed). The store is a private one under the tool cache, so these
# builds never meet another user's storage configuration, and it persists between runs: that
# is where the cached base images live. test/helpers/image.ts uses the same paths.

# The tool cache (as test/peers/haraka.ts's toolCacheDir).
MAILRELAY_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mailrelay"
# buildah's store: MAILRELAY_BUILDAH_ROOT overrides it.
MAILRELAY_BUILDAH_ROOT="${MAILRELAY_BUILDAH_ROOT:-$MAILRELAY_CACHE/containers}"
export BUILDAH_ISOLATION=chroot

bh() {
  buildah --root "$MAILRELAY_BUILDAH_ROOT/storage" --runroot "$MAILRELAY_BUILDAH_ROOT/run" --storage-driver vfs "$@"
}
has_image() { bh inspect --type image "$1" >/dev/null 2>&1; }
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
