#!/usr/bin/env bash
# Shared settings for hack/build-tools.sh and hack/local-cluster.sh.
# Source it; it defines variables and functions only.
# shellcheck disable=SC2034  # variables are used by the scripts that source this
#
# Versions are read from the wrapper modules' go.mod files under hack/tools/,
# so a version bump is one `go get` there and nothing else.

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "${HACK_DIR}/.." && pwd)"
TOOLS_DIR="${HACK_DIR}/tools"

# Root of everything built or run outside the source tree.
TIDB_OPERATOR_CACHE="${TIDB_OPERATOR_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/tidb-operator}"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# module_version GO_MOD MODULE: the version GO_MOD requires for MODULE.
module_version() {
  local gomod="$1" module="$2" v
  v="$(awk -v m="${module}" '
    $1 == "require" && $2 == m { print $3; exit }
    $1 == m && $2 ~ /^v/ { print $2; exit }
  ' "${gomod}")"
  [[ -n "${v}" ]] || die "cannot find ${module} in ${gomod}"
  printf '%s\n' "${v}"
}

K8S_VERSION="$(module_version "${TOOLS_DIR}/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(module_version "${TOOLS_DIR}/etcd/go.mod" go.etcd.io/etcd/server/v3)"
KWOK_VERSION="$(module_version "${TOOLS_DIR}/kwok/go.mod" sigs.k8s.io/kwok)"
PROMETHEUS_VERSION="$(module_version "${TOOLS_DIR}/prometheus/go.mod" github.com/prometheus/prometheus)"
CERT_MANAGER_VERSION="$(module_version "${TOOLS_DIR}/cert-manager/go.mod" github.com/cert-manager/cert-manager)"

BIN_ROOT="${TIDB_OPERATOR_CACHE}/bin"
K8S_BIN_DIR="${BIN_ROOT}/k8s-${K8S_VERSION}"
ETCD_BIN_DIR="${BIN_ROOT}/etcd-${ETCD_VERSION}"
KWOK_BIN_DIR="${BIN_ROOT}/kwok-${KWOK_VERSION}"
PROMETHEUS_BIN_DIR="${BIN_ROOT}/prometheus-${PROMETHEUS_VERSION}"
# Holds cert-manager-controller and, under crds/, the CRDs of the same module version.
CERT_MANAGER_BIN_DIR="${BIN_ROOT}/cert-manager-${CERT_MANAGER_VERSION}"

# PATH entries for the built tools, kubectl first.
tools_path() {
  printf '%s:%s:%s:%s:%s\n' "${K8S_BIN_DIR}" "${ETCD_BIN_DIR}" "${KWOK_BIN_DIR}" "${PROMETHEUS_BIN_DIR}" \
    "${CERT_MANAGER_BIN_DIR}"
}
