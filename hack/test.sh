#!/usr/bin/env bash
# The project's test command (README.md; CI runs it through .ci/run):
#   1. builds the local control plane's tools once into the cache (hack/build-tools.sh) and puts
#      them first on PATH, so the tests use the same kubectl everywhere;
#   2. checks formatting, that manifests/crd and docs/api-reference.md match the code, and clippy;
#   3. builds the operator image (hack/build-image.sh: static binaries, an OCI image from scratch,
#      unpacked again) unless SKIP_IMAGE=1, for the scenario that runs the image's binaries. It is
#      built with the `image-check` profile (IMAGE_PROFILE): the release image's files, layout and
#      static linking, without the optimisation that would make this step the run's longest;
#   4. builds the previous commit's controllers (hack/build-previous.sh), which the operator-upgrade
#      scenario starts from, before this commit's own binaries are built;
#   5. starts the local control plane `tidb-test` (removed again at the end unless KEEP_CLUSTER=1)
#      and runs every test of the workspace, the API and end-to-end tests against it, several
#      test binaries at once (hack/run-tests.sh; TEST_JOBS). The multi-cluster scenario starts a
#      second control plane, `tidb-test-2`, and the control-plane restart scenario one of its own,
#      `tidb-test-restart`; both are removed at the end as well;
#   6. prints one closing line: "tests: N passed, N failed, N skipped".
#
# Usage: hack/test.sh [cargo test arguments] [-- test binary arguments]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools (kubectl and the local control plane binaries)"
tools="$(hack/build-tools.sh)"
eval "${tools}"
export PATH="${TOOLS_PATH}:${PATH}"
export KUBECTL="${K8S_BIN_DIR}/kubectl"
# Read by tests/monitoring.rs (checks and unit-tests the shipped alert rules) and
# tests/e2e/monitoring.rs (a real Prometheus scraping a sample cluster).
export PROMTOOL="${PROMETHEUS_BIN_DIR}/promtool"
export PROMETHEUS="${PROMETHEUS_BIN_DIR}/prometheus"
# Read by testkit's CertManager (tests/e2e/tls.rs); its CRDs are in crds/ next to it.
export CERT_MANAGER_CONTROLLER="${CERT_MANAGER_BIN_DIR}/cert-manager-controller"
"${KUBECTL}" version --client >&2

step "formatting"
cargo fmt --all -- --check

step "generated files are up to date"
cargo xtask crds --check
cargo xtask docs --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [[ "${SKIP_IMAGE:-0}" != 1 ]]; then
  step "the operator image"
  image_env="$(IMAGE_PROFILE="${IMAGE_PROFILE:-image-check}" hack/build-image.sh)"
  eval "${image_env}"
  # Read by tests/e2e/image.rs: the unpacked image whose binaries it runs.
  export TIDB_OPERATOR_IMAGE_BUNDLE
fi

step "the previous commit's controllers (the operator-upgrade scenario)"
previous_env="$(hack/build-previous.sh)"
eval "${previous_env}"
# Read by tests/e2e/tidb.rs::upgrading_the_operator_from_the_previous_commit_restarts_nothing.
export TIDB_OPERATOR_PREVIOUS_BIN

step "local control plane"
export TESTKIT_CLUSTER="${TESTKIT_CLUSTER:-tidb-test}"
# The second control plane, standing for another Kubernetes cluster: started by the test harness
# only when a multi-cluster scenario (tests/e2e/multicluster.rs) asks for it, removed here.
export TESTKIT_CLUSTER_2="${TESTKIT_CLUSTER_2:-${TESTKIT_CLUSTER}-2}"
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  rm -f "${log:-}"
  if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
    hack/local-cluster.sh down "${TESTKIT_CLUSTER}" >&2 || true
    hack/local-cluster.sh down "${TESTKIT_CLUSTER_2}" >/dev/null 2>&1 || true
    hack/local-cluster.sh down "${TESTKIT_CLUSTER}-restart" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
hack/local-cluster.sh up "${TESTKIT_CLUSTER}" >&2

step "tests"
# Controller binaries run as child processes in end-to-end tests.
cargo build --workspace --bins --locked
log="$(mktemp)"
set +e
hack/run-tests.sh "$@" 2>&1 | tee "${log}"
status=${PIPESTATUS[0]}
set -e

# One closing line summing every test binary's result line.
awk '
  /^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i) ~ /^passed;?$/) passed += $(i - 1)
      if ($(i) ~ /^failed;?$/) failed += $(i - 1)
      if ($(i) ~ /^ignored;?$/) ignored += $(i - 1)
    }
  }
  END { printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored }
' "${log}" | tee target/test-summary.txt
exit "${status}"
