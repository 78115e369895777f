#!/usr/bin/env bash
# Build the local control plane's binaries from the Go module proxy into a
# cache outside the source tree, once per version:
#
#   $TIDB_OPERATOR_CACHE/bin/k8s-<version>/   kube-apiserver kube-controller-manager kube-scheduler kubectl
#   $TIDB_OPERATOR_CACHE/bin/etcd-<version>/  etcd
#   $TIDB_OPERATOR_CACHE/bin/kwok-<version>/  kwok kwokctl
#   $TIDB_OPERATOR_CACHE/bin/prometheus-<version>/  prometheus promtool
#   $TIDB_OPERATOR_CACHE/bin/cert-manager-<version>/  cert-manager-controller, crds/*.yaml
#
# TIDB_OPERATOR_CACHE defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/tidb-operator.
# Versions come from the wrapper modules under hack/tools/ (go.mod).
#
# Each directory holds a .stamp file naming the version and a hash of the
# wrapper module (go.mod, go.sum, main sources) and build flags; a directory
# whose binaries all exist and whose stamp matches is reused as it is.
#
# Usage: hack/build-tools.sh [--check]
#   --check   build nothing; exit 1 if any binary is missing or stale.
#
# On success it prints, on stdout, shell assignments a caller can eval:
#   K8S_BIN_DIR=... ETCD_BIN_DIR=... KWOK_BIN_DIR=... PROMETHEUS_BIN_DIR=... CERT_MANAGER_BIN_DIR=...
#   TOOLS_PATH=...
# Progress goes to stderr.
set -euo pipefail

# shellcheck source=hack/lib/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/tools.sh"

CHECK_ONLY=false
case "${1:-}" in
  "") ;;
  --check) CHECK_ONLY=true ;;
  -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

command -v go >/dev/null 2>&1 || die "go is not on PATH; install Go (1.25 or newer) to build the local control plane"

# Keep the build independent of whatever the caller's Go environment says.
export CGO_ENABLED=0
export GOWORK=off
export GOFLAGS=-mod=readonly

sha256() { sha256sum | awk '{print $1}'; }

# stamp_for MODULE_DIR VERSION LDFLAGS [TAGS]: the content a fresh stamp must have.
stamp_for() {
  local moddir="$1" version="$2" ldflags="$3" tags="${4:-}"
  local hash
  hash="$(
    cd "${moddir}"
    {
      cat go.mod go.sum
      find . \( -name '*.go' -o -name 'patch.sh' \) -not -path './etcd/*' -not -path './kwok/*' \
        -not -path './prometheus/*' -not -path './cert-manager/*' -print0 | LC_ALL=C sort -z | xargs -0 cat
      printf '%s\n' "${ldflags}" "${GOOS:-}" "${GOARCH:-}"
      # Only when set, so the stamps of tools built without tags stay as they were.
      if [[ -n "${tags}" ]]; then printf 'tags=%s\n' "${tags}"; fi
    } | sha256
  )"
  printf 'version=%s\nsource=%s\n' "${version}" "${hash}"
}

# is_fresh DIR STAMP BINARY...: all binaries exist and the stamp matches.
is_fresh() {
  local dir="$1" stamp="$2"; shift 2
  local b
  [[ -f "${dir}/.stamp" ]] || return 1
  [[ "$(cat "${dir}/.stamp")" == "${stamp}" ]] || return 1
  for b in "$@"; do
    [[ -x "${dir}/${b}" ]] || return 1
  done
}

STALE=()

# ensure DIR MODULE_DIR VERSION LDFLAGS "BINARY=PACKAGE"...
# BUILD_TAGS, when set in the caller's environment of the call, become `go build -tags`.
ensure() {
  local dir="$1" moddir="$2" version="$3" ldflags="$4"; shift 4
  local tags="${BUILD_TAGS:-}"
  local -a names=() pkgs=()
  local spec
  for spec in "$@"; do
    names+=("${spec%%=*}")
    pkgs+=("${spec#*=}")
  done

  local stamp
  stamp="$(stamp_for "${moddir}" "${version}" "${ldflags}" "${tags}")"
  if is_fresh "${dir}" "${stamp}" "${names[@]}"; then
    log "up to date: ${dir}"
    return 0
  fi
  if [[ "${CHECK_ONLY}" == true ]]; then
    STALE+=("${dir}")
    return 0
  fi

  log "building ${names[*]} (${version}) into ${dir} ..."
  local tmp start
  tmp="$(mktemp -d "${dir}.tmp.XXXXXX")"
  start="${SECONDS}"
  # A module directory may carry a patch.sh that patches the tool for the test world (it says
  # what and why): it prepares the patched source next to the build and prints the build flag.
  local -a patched=()
  if [[ -n "${tags}" ]]; then patched+=("-tags=${tags}"); fi
  if [[ -x "${moddir}/patch.sh" ]]; then
    patched+=("$(cd "${moddir}" && ./patch.sh "${tmp}.src")") || {
      rm -rf "${tmp}" "${tmp}.src"
      die "patching ${names[*]} failed"
    }
  fi
  if ! (cd "${moddir}" && go build -trimpath -buildvcs=false "${patched[@]}" -ldflags "${ldflags}" -o "${tmp}/" "${pkgs[@]}"); then
    rm -rf "${tmp}" "${tmp}.src"
    die "building ${names[*]} failed"
  fi
  rm -rf "${tmp}.src"
  local b
  for b in "${names[@]}"; do
    [[ -x "${tmp}/${b}" ]] || { rm -rf "${tmp}"; die "build produced no ${b}"; }
  done
  printf '%s\n' "${stamp}" >"${tmp}/.stamp"
  rm -rf "${dir}"
  mv "${tmp}" "${dir}"
  log "built ${names[*]} in $((SECONDS - start))s"
}

mkdir -p "${BIN_ROOT}"
# One build at a time per cache, so two clusters brought up at once on a cold
# cache do not build the same thing twice.
exec 9>"${BIN_ROOT}/.lock"
if ! flock -w 3600 9; then
  die "timed out after 1h waiting for another build-tools.sh to finish (lock ${BIN_ROOT}/.lock)"
fi

# Kubernetes: stamp the version the way the release build does, or the
# apiserver reports v0.0.0 and clients refuse it.
k8s_minor="${K8S_VERSION#v}"; k8s_minor="${k8s_minor#*.}"; k8s_minor="${k8s_minor%%.*}"
k8s_major="${K8S_VERSION#v}"; k8s_major="${k8s_major%%.*}"
# The release date of the module, so that builds are reproducible.
k8s_date="$(cd "${TOOLS_DIR}" && go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
  k8s_ldflags+=" -X ${pkg}.gitMajor=${k8s_major}"
  k8s_ldflags+=" -X ${pkg}.gitMinor=${k8s_minor}"
  k8s_ldflags+=" -X ${pkg}.gitTreeState=archive"
  k8s_ldflags+=" -X ${pkg}.buildDate=${k8s_date:-1970-01-01T00:00:00Z}"
done

ensure "${K8S_BIN_DIR}" "${TOOLS_DIR}" "${K8S_VERSION}" "${k8s_ldflags}" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
  kubectl=k8s.io/kubernetes/cmd/kubectl

ensure "${ETCD_BIN_DIR}" "${TOOLS_DIR}/etcd" "${ETCD_VERSION}" "-s -w" \
  etcd=./cmd/etcd

ensure "${KWOK_BIN_DIR}" "${TOOLS_DIR}/kwok" "${KWOK_VERSION}" \
  "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
  kwok=sigs.k8s.io/kwok/cmd/kwok \
  kwokctl=sigs.k8s.io/kwok/cmd/kwokctl

# Prometheus and promtool, for the monitoring tests (promtool's rule unit tests, and a real
# Prometheus scraping through Kubernetes service discovery). Every service discovery but
# Kubernetes' (and the built-in file and HTTP ones) is left out, which roughly halves the build;
# the web UI's assets are not embedded (the HTTP API is all the tests use).
# The module's v0.MMm.p is Prometheus M.mm.p (v0.316.0 is 3.16.0).
prom_minor="${PROMETHEUS_VERSION#v0.}"; prom_patch="${prom_minor#*.}"; prom_minor="${prom_minor%%.*}"
prom_pkg=github.com/prometheus/common/version
prom_ldflags="-s -w -X ${prom_pkg}.Version=$((prom_minor / 100)).$((prom_minor % 100)).${prom_patch}"
prom_ldflags+=" -X ${prom_pkg}.Branch=archive"
prom_ldflags+=" -X ${prom_pkg}.Revision=${PROMETHEUS_VERSION}"
BUILD_TAGS=remove_all_sd,enable_kubernetes_sd \
  ensure "${PROMETHEUS_BIN_DIR}" "${TOOLS_DIR}/prometheus" "${PROMETHEUS_VERSION}" "${prom_ldflags}" \
  prometheus=github.com/prometheus/prometheus/cmd/prometheus \
  promtool=github.com/prometheus/prometheus/cmd/promtool

# cert-manager's controllers, for the TLS tests: cert-manager does not publish its controller's
# main package through the module proxy, so hack/tools/cert-manager has a small main around the
# published controller packages (it says which it runs). The CRDs come from the same module
# version (deploy/crds), copied next to the binary for the tests to apply.
cm_pkg=github.com/cert-manager/cert-manager/pkg/util
ensure "${CERT_MANAGER_BIN_DIR}" "${TOOLS_DIR}/cert-manager" "${CERT_MANAGER_VERSION}" \
  "-s -w -X ${cm_pkg}.AppVersion=${CERT_MANAGER_VERSION} -X ${cm_pkg}.AppGitCommit=archive" \
  cert-manager-controller=./cmd/cert-manager-controller
if [[ "${CHECK_ONLY}" != true && ! -f "${CERT_MANAGER_BIN_DIR}/crds/cert-manager.io_certificates.yaml" ]]; then
  cm_dir="$(cd "${TOOLS_DIR}/cert-manager" && go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)"
  [[ -d "${cm_dir}/deploy/crds" ]] || die "cert-manager ${CERT_MANAGER_VERSION} has no deploy/crds"
  mkdir -p "${CERT_MANAGER_BIN_DIR}/crds"
  cp "${cm_dir}"/deploy/crds/*.yaml "${CERT_MANAGER_BIN_DIR}/crds/"
  chmod u+w "${CERT_MANAGER_BIN_DIR}"/crds/*.yaml
fi

if [[ "${CHECK_ONLY}" == true && ${#STALE[@]} -gt 0 ]]; then
  log "missing or stale: ${STALE[*]} (run hack/build-tools.sh)"
  exit 1
fi

printf 'K8S_BIN_DIR=%q\n' "${K8S_BIN_DIR}"
printf 'ETCD_BIN_DIR=%q\n' "${ETCD_BIN_DIR}"
printf 'KWOK_BIN_DIR=%q\n' "${KWOK_BIN_DIR}"
printf 'PROMETHEUS_BIN_DIR=%q\n' "${PROMETHEUS_BIN_DIR}"
printf 'CERT_MANAGER_BIN_DIR=%q\n' "${CERT_MANAGER_BIN_DIR}"
printf 'TOOLS_PATH=%q\n' "$(tools_path)"
