#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (as root; idempotent: installs only
# what is missing, and runs apt-get update first when it has something to install).
# `npm test` (scripts/run-tests.mjs) and .ci/run call it; run it by hand with
#   sudo bash scripts/install-system-deps.sh
# The Kubernetes control plane and helm are not Debian packages here: they are built
# from Go modules by scripts/build-control-plane.sh, with the Go toolchain of the
# machine image (/usr/local/go; Debian's golang-go is too old for them).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
# THE list of system packages the tests use (one per line, with why).
apt_pkgs=(
  postfix        # smtp-sink / smtp-source: a real MTA nobody here wrote, as peer and load source
  swaks          # independent SMTP submission client for end-to-end tests
  prometheus     # prometheus + promtool: rule checks and a real scrape end to end
  ca-certificates
  openssl        # test certificates for STARTTLS / implicit TLS, and the test control plane's CA and keys
  # Libraries of Debian's exim4-daemon-light, which scripts/exim-extract.sh unpacks for the
  # interop matrix (test/interop/) without installing it: exim4 conflicts with postfix.
  libc6 libcrypt1 libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0 libnsl2 libpcre2-8-0
  buildah        # builds the image from the Dockerfile (vfs storage, chroot isolation: no daemon, no OCI runtime)
  mmdebstrap     # resolves and downloads the Debian packages of the image's local base images
  gpg debian-archive-keyring  # mmdebstrap checks the Debian archive signatures with them
)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] || [ ! -x /var/cache/mailrelay/exim4/usr/sbin/exim4 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-system-deps: missing: ${missing[*]:-} ${missing[*]:+and }Exim 4 (scripts/exim-extract.sh); run as root: sudo bash scripts/install-system-deps.sh" >&2
    exit 1
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  lock=(); command -v flock >/dev/null && lock=(flock /tmp/apt.lock)
  "${lock[@]}" apt-get update -q
  "${lock[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Exim 4 for the interop matrix, unpacked into /var/cache/mailrelay/exim4 (never apt-installed).
bash "$(dirname "$0")/exim-extract.sh"
