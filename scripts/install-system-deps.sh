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
)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "install-system-deps: missing Debian packages: ${missing[*]}; run as root: sudo bash scripts/install-system-deps.sh" >&2
  exit 1
fi
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
lock=(); command -v flock >/dev/null && lock=(flock /tmp/apt.lock)
"${lock[@]}" apt-get update -q
"${lock[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
