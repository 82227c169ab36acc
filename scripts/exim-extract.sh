#!/usr/bin/env bash
# Puts Debian's Exim 4 daemon (exim4-daemon-light) into a private directory for the interop
# matrix (test/interop/), WITHOUT installing it: the exim4 packages conflict with postfix,
# and apt would remove postfix to install them. The package is downloaded with
# `apt-get download` and unpacked with `dpkg-deb -x`; its plain library dependencies are
# installed by .ci/run. The binary is built to run as the user Debian-exim, created here
# the way exim4-base's postinst does.
# Usage: scripts/exim-extract.sh [dest]   (default: /var/cache/mailrelay/exim4, readable by the
# Debian-exim user that the daemon re-executes itself as: not under a 0700 home)
set -euo pipefail
dest="${1:-/var/cache/mailrelay/exim4}"
if ! getent passwd Debian-exim >/dev/null; then
  useradd --system --user-group --home-dir /var/spool/exim4 --no-create-home --shell /usr/sbin/nologin Debian-exim
fi
if [ -x "$dest/usr/sbin/exim4" ] && "$dest/usr/sbin/exim4" -C /dev/null -bV >/dev/null 2>&1; then exit 0; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # apt-get download fetches as the _apt user
(cd "$tmp" && { apt-get download -q exim4-daemon-light || { apt-get update -q && apt-get download -q exim4-daemon-light; }; })
mkdir -p "$dest"
dpkg-deb -x "$tmp"/exim4-daemon-light_*.deb "$dest"
"$dest/usr/sbin/exim4" -C /dev/null -bV | head -1
