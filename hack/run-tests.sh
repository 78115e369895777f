#!/usr/bin/env bash
# Runs every test binary of the workspace, several at once: the end-to-end scenarios spend most
# of their time waiting on controllers and the simulator, so running them side by side cuts the
# wall time without changing what any test asserts. Each binary's output is printed whole when it
# ends, so the log reads as it would one binary at a time.
#
# Usage: hack/run-tests.sh [cargo test arguments] [-- test binary arguments]
#   e.g. hack/run-tests.sh -p scenarios -- --nocapture
#
# Environment:
#   TEST_JOBS  test binaries running at once (default 4); each runs its own tests on as many
#              threads as libtest picks
#
# Tests are isolated from each other already (a namespace, Nodes and controllers of their own; the
# control-plane restart scenario has a control plane of its own). The binaries start longest first
# (SLOWEST below) so that the last to start are short ones.
#
# Writes each binary's output to ${CARGO_TARGET_DIR:-target}/test-logs/ and exits non-zero when
# any binary failed. The caller sums the `test result:` lines.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"

# The scenarios that take longest, longest first (from CI's timings). A binary not named here
# starts after these; naming one only changes when it starts.
SLOWEST=(control_plane_restart failover dns tikv tidb backup tiflash ticdc cluster pd plugin tls safety stores
  multicluster changes drain volumes instances monitoring_e2e examples image admission
  control_plane manifests leader)

jobs="${TEST_JOBS:-4}"
[[ "${jobs}" =~ ^[1-9][0-9]*$ ]] || { echo "TEST_JOBS must be a positive integer" >&2; exit 2; }

cargo_args=()
test_args=()
while (($#)); do
  if [[ "$1" == -- ]]; then
    shift
    test_args=("$@")
    break
  fi
  cargo_args+=("$1")
  shift
done

logs="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}/test-logs"
rm -rf "${logs}"
mkdir -p "${logs}"

# Every test binary (name, package directory, executable), built once.
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics "${cargo_args[@]}" \
  | jq -r 'select(.reason == "compiler-artifact" and .profile.test and .executable != null)
           | [.target.name, (.manifest_path | sub("/Cargo.toml$"; "")), .executable] | @tsv' \
  >"${logs}/binaries.tsv"

# Longest first: the named ones in SLOWEST's order, then the rest as cargo listed them.
plan="${logs}/plan.tsv"
: >"${plan}"
for name in "${SLOWEST[@]}"; do
  awk -F'\t' -v n="${name}" '$1 == n' "${logs}/binaries.tsv" >>"${plan}"
done
awk -F'\t' -v named="${SLOWEST[*]}" '
  BEGIN { split(named, list, " "); for (i in list) skip[list[i]] = 1 }
  !($1 in skip)' "${logs}/binaries.tsv" >>"${plan}"
count="$(wc -l <"${plan}")"
printf 'running %s test binaries, %s at a time\n' "${count}" "${jobs}" >&2

# One binary: run from its package's directory as cargo would, output to its log, then printed
# whole under a lock so that outputs do not interleave.
run_one() {
  local index="$1" name="$2" dir="$3" exe="$4" args=()
  mapfile -t args <"${logs}/test-args"
  local log="${logs}/${index}-${name}.log" status=0
  (cd "${dir}" && CARGO_MANIFEST_DIR="${dir}" "${exe}" "${args[@]}") >"${log}" 2>&1 || status=$?
  {
    flock 9
    printf '\n     Running %s (%s)\n' "${name}" "${exe#"${REPO_ROOT}"/}"
    cat "${log}"
    ((status == 0)) || printf 'test binary %s FAILED (exit %s)\n' "${name}" "${status}"
  } 9>"${logs}/.print.lock"
  return "${status}"
}
export -f run_one
export logs REPO_ROOT

if ((${#test_args[@]})); then printf '%s\n' "${test_args[@]}"; fi >"${logs}/test-args"
status=0
awk -F'\t' '{ printf "%d\t%s\t%s\t%s\n", NR, $1, $2, $3 }' "${plan}" \
  | tr '\t' '\n' \
  | xargs -d '\n' -n 4 -P "${jobs}" bash -c 'run_one "$@"' run_one || status=$?

# Doc tests are not in the binaries above.
cargo test --workspace --locked --doc "${cargo_args[@]}" -- "${test_args[@]}" || status=1
exit "${status}"
