#!/usr/bin/env bash
# Builds the real Kubernetes control plane the cluster scenarios run against
# (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl from
# k8s.io/kubernetes; etcd from go.etcd.io/etcd/server/v3; helm from helm.sh/helm/v4),
# each at the release pinned in its wrapper module under test/cluster/*-build/.
#
# The binaries go to a cache directory keyed by those versions and by a hash of the
# wrapper modules, so a warm machine returns in well under a second; a cold one takes
# tens of minutes on 2 cores (measured numbers in test/cluster/README.md).
#
# Prints the bin directory on its last line of stdout. Idempotent; safe to run twice
# at once (a lock serialises builders).
#
#   MAILRELAY_CLUSTER_BIN   where to put the binaries (default: the versioned cache dir)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/test/cluster"

# The pinned versions live in the wrapper modules; read them back from there so
# there is one place to change them.
modver() { awk -v m="$2" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$build/$1/go.mod"; }
k8s_version="$(modver build k8s.io/kubernetes)"
etcd_version="$(modver etcd-build go.etcd.io/etcd/server/v3)"
helm_version="$(modver helm-build helm.sh/helm/v4)"

go_bin=/usr/local/go/bin/go
[ -x "$go_bin" ] || go_bin="$(command -v go)"
# Never let a dependency's toolchain line fetch another Go: the modules need 1.26.
export GOTOOLCHAIN=local
# Debian's golang-go (1.19) may be first on PATH for other tools; make sure the
# compiler that `go` calls is the one we chose.
export PATH="$(dirname "$go_bin"):$PATH"

hash="$(cat "$build"/build/go.{mod,sum} "$build"/etcd-build/go.{mod,sum} "$build"/etcd-build/main.go \
  "$build"/helm-build/go.{mod,sum} "$0" | sha256sum | cut -c1-12)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/mailrelay/cluster-k8s${k8s_version}-etcd${etcd_version}-helm${helm_version}-${hash}"
bin="${MAILRELAY_CLUSTER_BIN:-$cache/bin}"
mkdir -p "$bin"

want=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm)
complete() { for b in "${want[@]}"; do [ -x "$bin/$b" ] || return 1; done; [ -f "$bin/.complete" ]; }
if complete; then echo "$bin"; exit 0; fi

exec 9>"$bin/.lock"
flock 9
if complete; then echo "$bin"; exit 0; fi

start=$(date +%s)
log() { echo "build-control-plane: $*" >&2; }
log "building k8s $k8s_version, etcd $etcd_version, helm $helm_version into $bin with $("$go_bin" version)"

k8s_minor="${k8s_version#v1.}"; k8s_minor="${k8s_minor%%.*}"
# What `make` in kubernetes stamps: without it every component reports v0.0.0-master,
# kubectl warns of skew and Helm's kubeVersion checks see a pre-release.
k8s_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$k8s_minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$k8s_minor"

gobuild() { # dir out pkg ldflags
  local t0=$(date +%s)
  (cd "$build/$1" && nice -n 10 "$go_bin" build -mod=mod -trimpath -ldflags "$4" -o "$bin/$2.tmp" "$3")
  mv "$bin/$2.tmp" "$bin/$2"
  log "$2 built in $(( $(date +%s) - t0 ))s"
}
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  [ -x "$bin/$c" ] || gobuild build "$c" "k8s.io/kubernetes/cmd/$c" "$k8s_ldflags"
done
[ -x "$bin/etcd" ] || gobuild etcd-build etcd . "-s -w"
[ -x "$bin/helm" ] || gobuild helm-build helm helm.sh/helm/v4/cmd/helm \
  "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.gitTreeState=clean"

printf 'kubernetes=%s\netcd=%s\nhelm=%s\n' "$k8s_version" "$etcd_version" "$helm_version" > "$bin/versions"
touch "$bin/.complete"
log "done in $(( $(date +%s) - start ))s"
echo "$bin"
