#!/usr/bin/env bash
# Quick start: a local control plane running the operator and a sample TiDB cluster.
#
# Usage: hack/quickstart.sh [up|down|status]
#   up      (default) build what is needed, start the local control plane `tidb-dev`, run the
#           operand simulator and every controller binary (two replicas each, under their own
#           ServiceAccounts from manifests/), apply examples/basic in namespace `db`, and wait
#           until the Cluster is Ready, showing progress; ends with `kubectl tidb status basic`
#   status  show the sample cluster (kubectl get, then `kubectl tidb status`)
#   down    stop the controllers and the simulator and remove the local control plane
#
# The operands (PD, TiKV, TiDB) cannot run on the local control plane's fake nodes; the operand
# simulator (test tooling) answers their APIs instead. See docs/quickstart.md.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib/tools.sh
source "${REPO_ROOT}/hack/lib/tools.sh"

NAME="tidb-dev"
NAMESPACE="db"
RUN_DIR="${TIDB_OPERATOR_CACHE}/quickstart"
CONTROLLERS=(cluster-controller pd-controller tikv-controller tidb-controller backup-controller)
REPLICAS=2
TIMEOUT="${QUICKSTART_TIMEOUT:-300}"

stop_processes() {
  if [[ -d "${RUN_DIR}" ]]; then
    for pidfile in "${RUN_DIR}"/*.pid; do
      [[ -e "${pidfile}" ]] || continue
      kill "$(cat "${pidfile}")" 2>/dev/null || true
      rm -f "${pidfile}"
    done
  fi
}

# Keeps only the ServiceAccount and RBAC objects of a rendered Kustomize base.
identity_objects() {
  awk '
    function flush() { if (doc != "" && keep) printf "%s---\n", doc; doc = ""; keep = 0 }
    /^---/ { flush(); next }
    /^kind: (ServiceAccount|ClusterRole|ClusterRoleBinding|Role|RoleBinding)$/ { keep = 1 }
    { doc = doc $0 "\n" }
    END { flush() }
  '
}

# A kubeconfig acting as a controller's ServiceAccount, with a token from the TokenRequest API.
service_account_kubeconfig() {
  local controller="$1" out="$2" token
  token="$(kubectl create token "${controller}" -n tidb-admin --duration=24h)"
  kubectl config view --raw --minify >"${out}"
  kubectl --kubeconfig "${out}" config set-credentials "${controller}" --token="${token}" >/dev/null
  kubectl --kubeconfig "${out}" config set-context --current --user="${controller}" >/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

up() {
  "${REPO_ROOT}/hack/local-cluster.sh" up "${NAME}"
  eval "$("${REPO_ROOT}/hack/local-cluster.sh" env "${NAME}")"

  log "building the operator binaries"
  (cd "${REPO_ROOT}" && cargo build --bins --quiet)
  local bin="${REPO_ROOT}/target/debug"

  stop_processes
  mkdir -p "${RUN_DIR}"
  kubectl apply --server-side -k "${REPO_ROOT}/manifests/controllers/namespace" >/dev/null

  log "starting the operand simulator (test tooling standing in for PD, TiKV and TiDB)"
  rm -f "${RUN_DIR}/simulator.address"
  nohup "${bin}/operand-simulator" --address-file "${RUN_DIR}/simulator.address" \
    >"${RUN_DIR}/simulator.log" 2>&1 &
  echo $! >"${RUN_DIR}/simulator.pid"
  for _ in $(seq 1 100); do [[ -s "${RUN_DIR}/simulator.address" ]] && break; sleep 0.1; done
  [[ -s "${RUN_DIR}/simulator.address" ]] || die "the simulator did not start; see ${RUN_DIR}/simulator.log"
  local sim
  sim="http://$(cat "${RUN_DIR}/simulator.address")"
  local overrides=(
    "--endpoint-override=pd=${sim}/clusters/{namespace}/{cluster}"
    "--endpoint-override=tikv=${sim}/clusters/{namespace}/{cluster}/tikv/{instance}"
    "--endpoint-override=tidb=${sim}/clusters/{namespace}/{cluster}/tidb/{instance}"
    "--endpoint-override=ticdc=${sim}/clusters/{namespace}/{cluster}/ticdc/{instance}"
    "--endpoint-override=tiflash=${sim}/clusters/{namespace}/{cluster}/tiflash/{instance}"
  )

  for controller in "${CONTROLLERS[@]}"; do
    kubectl kustomize "${REPO_ROOT}/manifests/controllers/${controller}" | identity_objects |
      kubectl apply --server-side --force-conflicts -f - >/dev/null
    service_account_kubeconfig "${controller}" "${RUN_DIR}/${controller}.kubeconfig"
    for replica in $(seq 0 $((REPLICAS - 1))); do
      local port
      port="$(free_port)"
      KUBECONFIG="${RUN_DIR}/${controller}.kubeconfig" nohup "${bin}/${controller}" \
        --http-address "127.0.0.1:${port}" --lease-namespace tidb-admin \
        --identity "${controller}-${replica}" "${overrides[@]}" \
        >"${RUN_DIR}/${controller}-${replica}.log" 2>&1 &
      echo $! >"${RUN_DIR}/${controller}-${replica}.pid"
      echo "${port}" >"${RUN_DIR}/${controller}-${replica}.port"
    done
    log "started ${controller} (${REPLICAS} replicas; /metrics on 127.0.0.1:$(cat "${RUN_DIR}/${controller}-0.port") and :$(cat "${RUN_DIR}/${controller}-1.port"))"
  done

  kubectl create namespace "${NAMESPACE}" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply -n "${NAMESPACE}" --server-side -k "${REPO_ROOT}/examples/basic"

  log "waiting for Cluster basic to be Ready (at most ${TIMEOUT}s)"
  local deadline=$((SECONDS + TIMEOUT)) ready=""
  while ((SECONDS < deadline)); do
    ready="$(kubectl get cluster basic -n "${NAMESPACE}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
    local line
    line="$(kubectl get -n "${NAMESPACE}" pdgroups,tikvgroups,tidbgroups --no-headers \
      -o custom-columns='KIND:.kind,NAME:.metadata.name,READY:.status.readyReplicas,DESIRED:.spec.replicas' 2>/dev/null |
      awk '{printf "%s %s %s/%s   ", $1, $2, ($3 == "<none>" ? 0 : $3), $4}')"
    printf '\r  [%3ds] %s' "$((deadline - SECONDS))" "${line}" >&2
    [[ "${ready}" == "True" ]] && break
    sleep 2
  done
  printf '\n' >&2
  echo
  kubectl get -n "${NAMESPACE}" clusters,pdgroups,tikvgroups,tidbgroups,pds,tikvs,tidbs
  echo
  # The kubectl plugin's view of the same cluster (docs/kubectl-tidb.md); exit 3 only says it is
  # not healthy, which the check below reports.
  "${bin}/kubectl-tidb" -n "${NAMESPACE}" status basic || true
  echo
  if [[ "${ready}" != "True" ]]; then
    echo "Cluster basic did not become Ready in ${TIMEOUT}s. Logs: ${RUN_DIR}/*.log" >&2
    exit 1
  fi
  cat <<MSG
Cluster basic is Ready in namespace ${NAMESPACE}.

Use it:     eval "\$(hack/local-cluster.sh env ${NAME})"; kubectl get -n ${NAMESPACE} group,instance
See it:     PATH="${bin}:\$PATH" kubectl tidb status -n ${NAMESPACE} basic
Scale it:   kubectl scale -n ${NAMESPACE} tikvgroup/tikv --replicas=4
Logs:       ${RUN_DIR}/
Remove it:  hack/quickstart.sh down
MSG
}

case "${1:-up}" in
  up) up ;;
  status)
    eval "$("${REPO_ROOT}/hack/local-cluster.sh" env "${NAME}")"
    kubectl get -n "${NAMESPACE}" clusters,pdgroups,tikvgroups,tidbgroups,pds,tikvs,tidbs
    "${REPO_ROOT}/target/debug/kubectl-tidb" -n "${NAMESPACE}" status basic || true
    ;;
  down)
    stop_processes
    "${REPO_ROOT}/hack/local-cluster.sh" down "${NAME}"
    rm -rf "${RUN_DIR}"
    ;;
  *)
    echo "usage: hack/quickstart.sh [up|down|status]" >&2
    exit 2
    ;;
esac
