#!/usr/bin/env bash
# Quick start: a local control plane with the CRDs and a sample TiDB cluster (examples/basic in
# namespace `db`).
#
# Usage: hack/quickstart.sh [up|down]
#   up    (default) build what is needed, start the local control plane `tidb-dev`, apply the
#         sample cluster and show it
#   down  remove the local control plane and everything in it
#
# The controllers do not reconcile yet: the sample objects are stored and validated by the API
# server, but no Pods are created. The bring-up grows with them.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="tidb-dev"
NAMESPACE="db"

case "${1:-up}" in
  up)
    "${REPO_ROOT}/hack/local-cluster.sh" up "${NAME}"
    eval "$("${REPO_ROOT}/hack/local-cluster.sh" env "${NAME}")"
    kubectl create namespace "${NAMESPACE}" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    kubectl apply -n "${NAMESPACE}" --server-side -k "${REPO_ROOT}/examples/basic"
    echo
    kubectl get -n "${NAMESPACE}" clusters,pdgroups,tikvgroups,tidbgroups
    cat <<MSG

The sample cluster is stored in namespace ${NAMESPACE}. The controllers that turn it into Pods
are not part of this release yet, so nothing more happens; the objects above are what they
will act on.

Use it:   eval "\$(hack/local-cluster.sh env ${NAME})"; kubectl get -n ${NAMESPACE} group
Remove:   hack/quickstart.sh down
MSG
    ;;
  down)
    "${REPO_ROOT}/hack/local-cluster.sh" down "${NAME}"
    ;;
  *)
    echo "usage: hack/quickstart.sh [up|down]" >&2
    exit 2
    ;;
esac
