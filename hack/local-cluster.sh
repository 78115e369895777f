#!/usr/bin/env bash
# The local Kubernetes control plane used by tests, CI and local bring-up:
# real etcd, kube-apiserver (RBAC on), kube-controller-manager, kube-scheduler
# and kwok, all as processes on 127.0.0.1 (no container runtime), run by
# kwokctl's binary runtime from binaries built by hack/build-tools.sh.
#
# Usage: hack/local-cluster.sh COMMAND [NAME]
#   up [NAME]       build the tools if needed, start the cluster (or reuse a
#                   running one), create the fake Nodes, install the CRDs
#   down [NAME]     stop every process of the cluster and remove its state
#   restart [NAME]  stop every process of the cluster (etcd included) and start
#                   them again on the same state
#   env [NAME]      print `export KUBECONFIG=...`, `export KUBECTL=...` and
#                   `export PATH=...` lines; use: eval "$(hack/local-cluster.sh env)"
#   status [NAME]   print the cluster's state; exit 1 if it is not up
#   kubeconfig [NAME]  print the kubeconfig path only
# NAME defaults to tidb-dev. Several clusters with different NAMEs can run at
# once; kwokctl picks free ports for each.
#
# Environment:
#   TIDB_OPERATOR_CACHE          cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/tidb-operator)
#   LOCAL_CLUSTER_ZONES          zones of the fake Nodes (default "zone-a zone-b zone-c")
#   LOCAL_CLUSTER_NODES_PER_ZONE fake Nodes per zone (default 2)
#   LOCAL_CLUSTER_TIMEOUT        seconds allowed for each wait during `up` (default 180)
#   LOCAL_CLUSTER_CRD_DIR        CRDs to install (default manifests/crd of this repo)
#
# Layout: kwokctl's work dir is $TIDB_OPERATOR_CACHE/kwok; a cluster NAME lives
# in $TIDB_OPERATOR_CACHE/kwok/clusters/NAME/ and its admin kubeconfig is
# $TIDB_OPERATOR_CACHE/kwok/clusters/NAME/kubeconfig.yaml.
set -euo pipefail

# shellcheck source=hack/lib/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/tools.sh"

ZONES="${LOCAL_CLUSTER_ZONES:-zone-a zone-b zone-c}"
NODES_PER_ZONE="${LOCAL_CLUSTER_NODES_PER_ZONE:-2}"
TIMEOUT="${LOCAL_CLUSTER_TIMEOUT:-180}"
CRD_DIR="${LOCAL_CLUSTER_CRD_DIR:-${REPO_ROOT}/manifests/crd}"

usage() { sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

COMMAND="${1:-}"
NAME="${2:-tidb-dev}"
[[ $# -le 2 ]] || { usage >&2; exit 2; }
[[ "${NAME}" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "cluster name must be a DNS label (lowercase letters, digits, '-'): ${NAME}"
[[ "${NODES_PER_ZONE}" =~ ^[1-9][0-9]*$ ]] || die "LOCAL_CLUSTER_NODES_PER_ZONE must be a positive integer"
[[ "${TIMEOUT}" =~ ^[1-9][0-9]*$ ]] || die "LOCAL_CLUSTER_TIMEOUT must be a positive number of seconds"

export KWOK_WORKDIR="${TIDB_OPERATOR_CACHE}/kwok"
CLUSTER_DIR="${KWOK_WORKDIR}/clusters/${NAME}"
KUBECONFIG_PATH="${CLUSTER_DIR}/kubeconfig.yaml"
KUBECTL_BIN="${K8S_BIN_DIR}/kubectl"
KWOKCTL_BIN="${KWOK_BIN_DIR}/kwokctl"

kubectl_() { "${KUBECTL_BIN}" --kubeconfig "${KUBECONFIG_PATH}" "$@"; }
kwokctl_() { "${KWOKCTL_BIN}" --name "${NAME}" "$@"; }

cluster_exists() { [[ -f "${CLUSTER_DIR}/kwok.yaml" ]]; }
api_ready() { [[ -f "${KUBECONFIG_PATH}" ]] && kubectl_ get --raw=/readyz --request-timeout=5s >/dev/null 2>&1; }

# wait_until DESCRIPTION COMMAND...: retry COMMAND every second for TIMEOUT seconds.
wait_until() {
  local what="$1"; shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "timed out after ${TIMEOUT}s waiting for ${what} (cluster ${NAME}; logs: ${CLUSTER_DIR}/logs)"
    fi
    sleep 1
  done
}

ensure_tools() {
  local out
  out="$("${HACK_DIR}/build-tools.sh")" || die "hack/build-tools.sh failed"
  [[ -x "${KUBECTL_BIN}" && -x "${KWOKCTL_BIN}" ]] || die "tools missing after build: ${out}"
}

# The kwokctl configuration of a cluster: every binary is a local path, so
# kwokctl never downloads anything, and every component binds to loopback.
write_kwokctl_config() {
  local file="$1"
  cat >"${file}" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeVersion: ${K8S_VERSION}
  etcdVersion: ${ETCD_VERSION#v}
  kwokVersion: ${KWOK_VERSION}
  securePort: true
  kubeAuthorization: true
  kubeAdmission: true
  disableKubeScheduler: false
  disableKubeControllerManager: false
  quietPull: true
  cacheDir: ${KWOK_WORKDIR}/cache
  kubeBinaryPrefix: ${K8S_BIN_DIR}
  kubeApiserverBinary: ${K8S_BIN_DIR}/kube-apiserver
  kubeControllerManagerBinary: ${K8S_BIN_DIR}/kube-controller-manager
  kubeSchedulerBinary: ${K8S_BIN_DIR}/kube-scheduler
  kubectlBinary: ${K8S_BIN_DIR}/kubectl
  etcdBinaryPrefix: ${ETCD_BIN_DIR}
  etcdBinary: ${ETCD_BIN_DIR}/etcd
  kwokBinaryPrefix: ${KWOK_BIN_DIR}
  kwokControllerBinary: ${KWOK_BIN_DIR}/kwok
  kubeAuditPolicy: ${AUDIT_POLICY}
EOF
  write_stages >>"${file}"
}

# The API server's audit policy: the writes of the operator's controllers (the
# ServiceAccounts in tidb-admin), at Metadata level, so a test can tell which
# replica wrote what and when (logs/audit.log of the cluster). Events and
# Leases are left out: they are many and say nothing about who acted.
AUDIT_POLICY="${KWOK_WORKDIR}/audit-policy.yaml"
write_audit_policy() {
  cat >"${AUDIT_POLICY}" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  resources:
  - group: ""
    resources: ["events"]
  - group: "events.k8s.io"
    resources: ["events"]
  - group: "coordination.k8s.io"
    resources: ["leases"]
- level: Metadata
  userGroups: ["system:serviceaccounts:tidb-admin"]
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
EOF
}

# The directory of the kwok module the tools were built from (downloaded if
# the Go module cache no longer has it).
kwok_module_dir() {
  local json
  json="$(cd "${TOOLS_DIR}/kwok" && GOFLAGS=-mod=readonly go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}")" \
    || die "cannot find the sigs.k8s.io/kwok ${KWOK_VERSION} module (go mod download failed)"
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"${json}"
}

# A selector expression (jq, as kwok Stages take them) true for a Pod with a
# container image on a host under `.invalid`: a name that never resolves
# (RFC 2606), so such an image can never be pulled.
UNPULLABLE_IMAGE='.spec.containers.[].image | split("/") | .[0] | endswith(".invalid")'

# A selector expression true for a Pod whose Node a test has lost (the tests'
# NodePool::lose annotates the Pods there): no kubelet is left to confirm its
# end, so once deleted it stays terminating, as on a real lost Node.
ON_LOST_NODE='.metadata.annotations // {} | has("test.pingcap.com/node-lost")'

# Prints kwok stage FILE with a first match expression that the selector
# expression EXPR is not true: the stage then skips the objects EXPR picks.
except_when() {
  local expr="$1" file="$2"
  awk -v expr="${expr}" '
    { print }
    /^    matchExpressions:$/ && !done {
      print "    - key: '\''" expr "'\''"
      print "      operator: NotIn"
      print "      values: [\"true\"]"
      done = 1
    }
    END { if (!done) exit 1 }
  ' "${file}" || die "kwok's stage ${file} has no matchExpressions to extend"
}

# kwokctl drops all of its default stages once any Stage is given, so this
# gives kwok's own defaults for this runtime, from the pinned kwok module (node
# initialize and heartbeat with leases; pod ready, Job pod complete, pod
# delete), with pod-ready skipping Pods of unpullable images and pod-delete
# skipping Pods on a lost Node, plus a stage that leaves a Pod of an unpullable
# image Pending in ImagePullBackOff, as a kubelet would.
write_stages() {
  local dir stage
  dir="$(kwok_module_dir)"
  [[ -d "${dir}/kustomize/stage" ]] || die "no kwok stages in '${dir}'"
  for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
      pod/fast/pod-complete; do
    printf -- '---\n'
    cat "${dir}/kustomize/stage/${stage}.yaml"
  done
  printf -- '---\n'
  except_when "${UNPULLABLE_IMAGE}" "${dir}/kustomize/stage/pod/fast/pod-ready.yaml"
  printf -- '---\n'
  except_when "${ON_LOST_NODE}" "${dir}/kustomize/stage/pod/fast/pod-delete.yaml"
  cat <<EOF
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-image-pull-back-off
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: DoesNotExist
    - key: '${UNPULLABLE_IMAGE}'
      operator: In
      values: ["true"]
    - key: '.status.containerStatuses.[].state.waiting.reason'
      operator: NotIn
      values: ["ImagePullBackOff"]
  next:
    statusTemplate: |
      {{ \$now := Now }}
      conditions:
      - lastTransitionTime: {{ \$now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ \$now | Quote }}
        status: "False"
        type: Ready
        reason: ContainersNotReady
      - lastTransitionTime: {{ \$now | Quote }}
        status: "False"
        type: ContainersReady
        reason: ContainersNotReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        started: false
        restartCount: 0
        state:
          waiting:
            reason: ImagePullBackOff
            message: {{ printf "Back-off pulling image %q" .image | Quote }}
      {{ end }}
      {{ with NodeIPsWith .spec.nodeName }}
      hostIP: {{ index . 0 | Quote }}
      {{ end }}
      phase: Pending
      startTime: {{ \$now | Quote }}
EOF
}

nodes_yaml() {
  local zone i name
  for zone in ${ZONES}; do
    for ((i = 0; i < NODES_PER_ZONE; i++)); do
      name="kwok-${zone}-${i}"
      cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: ${name}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: ${name}
    topology.kubernetes.io/region: local
    topology.kubernetes.io/zone: ${zone}
spec: {}
status:
  allocatable:
    cpu: "32"
    memory: 256Gi
    pods: "110"
    ephemeral-storage: 1Ti
  capacity:
    cpu: "32"
    memory: 256Gi
    pods: "110"
    ephemeral-storage: 1Ti
  nodeInfo:
    architecture: amd64
    kubeProxyVersion: fake
    kubeletVersion: fake
    operatingSystem: linux
  phase: Running
EOF
    done
  done
}

install_crds() {
  local -a files=()
  local f
  if [[ -d "${CRD_DIR}" ]]; then
    while IFS= read -r -d '' f; do
      # A kustomization.yaml beside the CRDs is not itself an API object.
      [[ "$(basename "${f}")" == kustomization.y*ml ]] || files+=(-f "${f}")
    done < <(find "${CRD_DIR}" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' \) -print0 | LC_ALL=C sort -z)
  fi
  if ((${#files[@]} == 0)); then
    log "no CRD manifests in ${CRD_DIR}; skipping CRD installation"
    return 0
  fi
  log "installing $((${#files[@]} / 2)) CRD manifest(s) from ${CRD_DIR}"
  kubectl_ apply --server-side --force-conflicts "${files[@]}" >&2
  kubectl_ wait --for=condition=Established crd --all --timeout="${TIMEOUT}s" >&2 \
    || die "CRDs did not become Established within ${TIMEOUT}s"
}

print_env() {
  printf 'export KUBECONFIG=%q\n' "${KUBECONFIG_PATH}"
  printf 'export KUBECTL=%q\n' "${KUBECTL_BIN}"
  # shellcheck disable=SC2016  # $PATH is for the caller's shell to expand
  printf 'export PATH=%q:"${PATH}"\n' "$(tools_path)"
}

cmd_up() {
  ensure_tools
  mkdir -p "${KWOK_WORKDIR}"
  # Two callers bringing up the same cluster at once (two tests of one run, say) would both
  # create its Nodes and one would fail on AlreadyExists: one `up` per cluster at a time; the
  # second finds the cluster running. 9>&- below keeps this lock out of the processes left running.
  exec 9>"${KWOK_WORKDIR}/.up-${NAME}.lock"
  flock -w "${TIMEOUT}" 9 || die "timed out after ${TIMEOUT}s waiting for another 'up ${NAME}' (lock ${KWOK_WORKDIR}/.up-${NAME}.lock)"

  # kwokctl keeps a cluster's first configuration: one created before the audit policy
  # existed would never write its audit log, which tests read. Such a cluster is test state
  # only: recreate it.
  if cluster_exists && ! grep -q 'kubeAuditPolicy' "${CLUSTER_DIR}/kwok.yaml" 2>/dev/null; then
    log "cluster ${NAME} was created without the audit policy; recreating it"
    cmd_down
  fi

  if cluster_exists && api_ready; then
    log "cluster ${NAME} is already running"
  else
    if cluster_exists; then
      # Left over from an earlier run (a reboot, a crash): stop what is left
      # of it so that kwokctl starts every component afresh on the same state.
      log "cluster ${NAME} exists but is not ready; restarting its processes"
      local -a stale
      mapfile -t stale < <(cluster_pids)
      stop_processes "${stale[@]}"
      # kwokctl skips a component whose pid file names a live pid, and an
      # exited process may linger as a zombie for a while: drop the pid files.
      rm -f "${CLUSTER_DIR}"/pids/*.pid
    fi
    local config
    config="$(mktemp "${KWOK_WORKDIR}/kwokctl-${NAME}.XXXXXX.yaml")"
    write_audit_policy
    write_kwokctl_config "${config}"
    # kwokctl picks each cluster's ports by probing for free ones; two
    # clusters created at the same moment can pick the same ports. Create one
    # at a time: once kwokctl returns, this cluster's ports are bound.
    if [[ "${CREATE_LOCK_HELD:-0}" != 1 ]]; then
      exec 8>"${KWOK_WORKDIR}/.create.lock"
      flock -w "${TIMEOUT}" 8 || die "timed out after ${TIMEOUT}s waiting for another cluster's creation (lock ${KWOK_WORKDIR}/.create.lock)"
    fi
    log "starting cluster ${NAME} (logs: ${CLUSTER_DIR}/logs)"
    # --timeout bounds creation; --kubeconfig "" keeps ~/.kube/config
    # untouched; 8>&- keeps the lock out of the processes kwokctl leaves running.
    if ! kwokctl_ --config "${config}" create cluster \
        --runtime binary \
        --kubeconfig "" \
        --timeout "${TIMEOUT}s" >&2 8>&- 9>&-; then
      rm -f "${config}"
      die "kwokctl could not create cluster ${NAME}; see ${CLUSTER_DIR}/logs, then run: $0 down ${NAME}"
    fi
    rm -f "${config}"
    [[ -f "${KUBECONFIG_PATH}" ]] || die "kwokctl wrote no kubeconfig at ${KUBECONFIG_PATH}"
    wait_until "the API server of ${NAME} to be ready" api_ready
    exec 8>&-
  fi

  # The scheduler and the controller manager hold their leader leases once
  # they are running.
  wait_until "kube-scheduler to take its leader lease" \
    kubectl_ get lease kube-scheduler --namespace kube-system
  wait_until "kube-controller-manager to take its leader lease" \
    kubectl_ get lease kube-controller-manager --namespace kube-system

  log "creating fake Nodes (${NODES_PER_ZONE} per zone in: ${ZONES})"
  nodes_yaml | kubectl_ apply -f - >&2
  kubectl_ wait --for=condition=Ready node -l type=kwok --timeout="${TIMEOUT}s" >&2 \
    || die "fake Nodes did not become Ready within ${TIMEOUT}s (is kwok running? see ${CLUSTER_DIR}/logs)"

  # Pods cannot be created in a namespace before its default ServiceAccount is.
  wait_until "the default ServiceAccount (kube-controller-manager)" \
    kubectl_ get serviceaccount default --namespace default

  install_crds

  log ""
  log "cluster ${NAME} is up"
  log "  kubeconfig: ${KUBECONFIG_PATH}"
  log "  kubectl:    ${KUBECTL_BIN}"
  log "  use it:     eval \"\$($0 env ${NAME})\""
  print_env
}

# ours PID: the process is alive and was started for this cluster (its
# command line names the cluster's directory), not a recycled pid.
ours() {
  local pid="$1"
  kill -0 "${pid}" 2>/dev/null || return 1
  # A zombie has exited already (its cmdline is empty too).
  [[ "$(awk '{print $3}' "/proc/${pid}/stat" 2>/dev/null)" != Z ]] || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF "${CLUSTER_DIR}/"
}

# pids of the cluster's running processes, from kwokctl's pid files.
cluster_pids() {
  local f pid
  [[ -d "${CLUSTER_DIR}/pids" ]] || return 0
  for f in "${CLUSTER_DIR}"/pids/*.pid; do
    [[ -f "${f}" ]] || continue
    pid="$(cat "${f}")"
    if [[ "${pid}" =~ ^[0-9]+$ ]] && ours "${pid}"; then
      printf '%s\n' "${pid}"
    fi
  done
}

# stop_processes PID...: SIGTERM, then SIGKILL whatever is still running after
# 20s, then wait for the killed ones to be gone (a process that still holds its
# port or its etcd data directory would make the next start fail). Only pids
# that are still this cluster's processes are touched.
stop_processes() {
  local pid deadline killed=0
  local -a alive
  for pid in "$@"; do
    if ours "${pid}"; then kill "${pid}" 2>/dev/null || true; fi
  done
  deadline=$((SECONDS + 20))
  while :; do
    alive=()
    for pid in "$@"; do
      if ours "${pid}"; then alive+=("${pid}"); fi
    done
    ((${#alive[@]} == 0)) && return 0
    if ((SECONDS >= deadline)); then
      if ((killed)); then
        log "processes still running 10s after SIGKILL: ${alive[*]}"
        return 1
      fi
      log "killing processes that did not stop within 20s: ${alive[*]}"
      kill -9 "${alive[@]}" 2>/dev/null || true
      killed=1
      deadline=$((SECONDS + 10))
    fi
    sleep 0.5
  done
}

# Stops every process of the control plane (etcd, kube-apiserver, the
# controller manager, the scheduler, kwok) as a crash would, then starts them
# again on the same state: what an operator sees when its control plane
# restarts under it.
cmd_restart() {
  cluster_exists || die "cluster ${NAME} does not exist"
  # While this cluster's processes are down its ports are free, and kwokctl creating another
  # cluster meanwhile would pick them: then this etcd cannot bind its port and this API server
  # talks to the other cluster's etcd. No cluster is created until these ports are bound again.
  exec 8>"${KWOK_WORKDIR}/.create.lock"
  flock -w "${TIMEOUT}" 8 || die "timed out after ${TIMEOUT}s waiting for another cluster's creation (lock ${KWOK_WORKDIR}/.create.lock)"
  # kwok plays every Node's kubelet, but a restarted kwok takes a new identity, and it acts for
  # a Node only once it holds the Node's Lease: it would wait for its earlier self's Leases to
  # expire (kwokctl makes them last 200 s), starting and deleting no Pod meanwhile. A kubelet
  # keeps its identity across a restart, so kwok is stopped first and its Leases released.
  local kwok_pid
  kwok_pid="$(cat "${CLUSTER_DIR}/pids/kwok-controller.pid" 2>/dev/null || true)"
  if [[ "${kwok_pid}" =~ ^[0-9]+$ ]]; then
    stop_processes "${kwok_pid}"
    kubectl_ delete lease --namespace kube-node-lease --all >/dev/null \
      || log "could not release the Node Leases; the restarted kwok waits for them to expire"
  fi
  local -a pids
  mapfile -t pids < <(cluster_pids)
  log "stopping the ${#pids[@]} processes of cluster ${NAME}"
  stop_processes "${pids[@]}"
  rm -f "${CLUSTER_DIR}"/pids/*.pid
  CREATE_LOCK_HELD=1 cmd_up >/dev/null
  exec 8>&-
}

cmd_down() {
  if [[ ! -d "${CLUSTER_DIR}" ]]; then
    log "cluster ${NAME} does not exist; nothing to do"
    return 0
  fi
  local -a pids
  mapfile -t pids < <(cluster_pids)
  if [[ -x "${KWOKCTL_BIN}" ]]; then
    log "deleting cluster ${NAME}"
    # kwokctl removes the cluster's context from --kubeconfig (it refuses an
    # empty path); give it a scratch file so ~/.kube/config is left alone.
    local scratch
    scratch="$(mktemp)"
    timeout "${TIMEOUT}" "${KWOKCTL_BIN}" --name "${NAME}" delete cluster --kubeconfig "${scratch}" >&2 \
      || log "kwokctl delete cluster failed; stopping the processes directly"
    rm -f "${scratch}"
  fi
  # Whatever kwokctl left behind: stop it by pid, then remove the state.
  stop_processes "${pids[@]}"
  rm -rf "${CLUSTER_DIR}"
  log "cluster ${NAME} removed"
}

cmd_status() {
  if ! cluster_exists; then
    echo "cluster ${NAME}: not created"
    return 1
  fi
  echo "cluster ${NAME}"
  echo "  state dir:  ${CLUSTER_DIR}"
  echo "  kubeconfig: ${KUBECONFIG_PATH}"
  echo "  processes:"
  local f pid state
  for f in "${CLUSTER_DIR}"/pids/*.pid; do
    [[ -f "${f}" ]] || continue
    pid="$(cat "${f}")"
    if ours "${pid}"; then state=running; else state=stopped; fi
    printf '    %-26s pid %-8s %s\n' "$(basename "${f}" .pid)" "${pid}" "${state}"
  done
  if api_ready; then
    echo "  api server: ready at $(kubectl_ config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
    kubectl_ get nodes -L topology.kubernetes.io/zone | sed 's/^/    /'
  else
    echo "  api server: not ready"
    return 1
  fi
}

case "${COMMAND}" in
  up) cmd_up ;;
  down) cmd_down ;;
  restart) cmd_restart ;;
  env)
    [[ -x "${KUBECTL_BIN}" ]] || log "warning: tools not built yet; run hack/build-tools.sh or '$0 up ${NAME}'"
    cluster_exists || log "warning: cluster ${NAME} does not exist yet; run '$0 up ${NAME}'"
    print_env
    ;;
  status) cmd_status ;;
  kubeconfig) printf '%s\n' "${KUBECONFIG_PATH}" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
