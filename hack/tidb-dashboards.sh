#!/usr/bin/env bash
# TiDB's own Grafana dashboards for a TiDB version, as ConfigMaps that Grafana's dashboard
# sidecar loads (label grafana_dashboard: "1"). They filter on the `tidb_cluster` and
# `k8s_cluster` labels that the monitoring component's PodMonitors set (docs/monitoring.md).
#
# Usage: hack/tidb-dashboards.sh VERSION [--datasource NAME] [--namespace NS] [--from DIR] > dashboards.yaml
#   VERSION         the TiDB release, e.g. v8.5.2 (the tag of pingcap/tidb, tikv/pd and tikv/tikv)
#   --datasource    the Grafana data source the dashboards query (default: Prometheus); it replaces
#                   the dashboards' ${DS_TEST-CLUSTER} placeholder
#   --namespace     the ConfigMaps' namespace (default: tidb-admin)
#   --from DIR      take the dashboards (*.json) from DIR instead of downloading them
#
# Downloaded, for VERSION, from raw.githubusercontent.com:
#   pingcap/tidb  overview.json tidb.json tidb_summary.json (pkg/metrics/grafana/, or metrics/grafana/
#                 before v8)
#   tikv/pd       pd.json
#   tikv/tikv     tikv_summary.json tikv_details.json
# A dashboard over 900 KiB does not fit a ConfigMap (1 MiB, with room for metadata): it is left
# out with a message on stderr; import it in Grafana's UI instead. Apply the output with
# `kubectl apply --server-side -f dashboards.yaml` (client-side apply would store each dashboard
# twice, in the last-applied annotation).
set -euo pipefail

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
log() { printf '%s\n' "$*" >&2; }

version="" datasource="Prometheus" namespace="tidb-admin" from=""
while (($#)); do
  case "$1" in
    --datasource) datasource="${2:?--datasource needs a name}"; shift 2 ;;
    --namespace) namespace="${2:?--namespace needs a name}"; shift 2 ;;
    --from) from="${2:?--from needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option: $1 (try --help)" ;;
    *) [[ -z "${version}" ]] || die "one VERSION only"; version="$1"; shift ;;
  esac
done
command -v jq >/dev/null 2>&1 || die "jq is required"
[[ -n "${version}" || -n "${from}" ]] || die "give a VERSION (e.g. v8.5.2) or --from DIR (try --help)"

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

# fetch REPO NAME PATH...: the first PATH of REPO at VERSION that exists, saved as NAME.
fetch() {
  local repo="$1" name="$2" path; shift 2
  command -v curl >/dev/null 2>&1 || die "curl is required to download the dashboards"
  for path in "$@"; do
    if curl -fsSL "https://raw.githubusercontent.com/${repo}/${version}/${path}" -o "${work}/${name}" 2>/dev/null; then
      log "fetched ${repo} ${version} ${path}"
      return 0
    fi
  done
  die "cannot download ${name} of ${repo} ${version} (tried: $*)"
}

if [[ -n "${from}" ]]; then
  [[ -d "${from}" ]] || die "--from ${from}: not a directory"
  cp "${from}"/*.json "${work}/" 2>/dev/null || die "--from ${from}: no *.json in it"
else
  for name in overview tidb tidb_summary; do
    fetch pingcap/tidb "${name}.json" "pkg/metrics/grafana/${name}.json" "metrics/grafana/${name}.json"
  done
  fetch tikv/pd pd.json metrics/grafana/pd.json
  for name in tikv_summary tikv_details; do
    fetch tikv/tikv "${name}.json" "metrics/grafana/${name}.json"
  done
fi

first=true
for file in "${work}"/*.json; do
  name="$(basename "${file}" .json)"
  jq empty "${file}" 2>/dev/null || die "${name}.json is not JSON"
  dashboard="$(jq -c --arg ds "${datasource}" '
    walk(if type == "string" then gsub("\\$\\{DS_TEST-CLUSTER\\}"; $ds) else . end)
    | del(.__inputs)' "${file}")"
  if (( ${#dashboard} > 900 * 1024 )); then
    log "left out ${name}: ${#dashboard} bytes do not fit a ConfigMap; import it in Grafana's UI"
    continue
  fi
  cm_name="tidb-dashboard-$(tr '_' '-' <<<"${name}")"
  [[ "${first}" == true ]] || printf -- '---\n'
  first=false
  jq -n --arg name "${cm_name}" --arg ns "${namespace}" --arg key "${name}.json" \
    --arg data "${dashboard}" --arg version "${version:-local}" '{
      apiVersion: "v1", kind: "ConfigMap",
      metadata: {name: $name, namespace: $ns,
                 labels: {grafana_dashboard: "1"},
                 annotations: {"tidb.pingcap.com/dashboard-version": $version}},
      data: {($key): $data}}'
done
[[ "${first}" == false ]] || die "no dashboard fits a ConfigMap"
