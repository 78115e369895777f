#!/usr/bin/env bash
# Builds the controllers of the previous commit (or of REV), for the scenario that upgrades the
# operator under a running cluster (tests/e2e/tidb.rs::upgrading_the_operator_from_the_previous_commit_restarts_nothing).
# There is no release to upgrade from yet; when there is, REV names its tag.
#
# Usage: hack/build-previous.sh [REV]   (REV defaults to HEAD~1)
#
# The source of REV is exported with `git archive` into ${CARGO_TARGET_DIR:-target}/previous/src
# and built there into the same target directory: the dependencies are shared with this commit's
# build, only the workspace's own crates are compiled again. Its binaries are copied to
# ${CARGO_TARGET_DIR:-target}/previous/bin, out of the way of this commit's own.
#
# Prints on stdout one assignment a caller can eval:
#   TIDB_OPERATOR_PREVIOUS_BIN=DIR         the directory of REV's binaries, or
#   TIDB_OPERATOR_PREVIOUS_BIN=none:REASON when this clone does not have REV (a shallow clone);
#                                          the scenario then says it did not run.
# Progress goes to stderr.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"

rev="${1:-HEAD~1}"
target="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}"
case "${target}" in /*) ;; *) target="${REPO_ROOT}/${target}" ;; esac
controllers=(cluster-controller pd-controller tikv-controller tidb-controller)

if ! commit="$(git rev-parse --verify -q "${rev}^{commit}")"; then
  # A shallow clone: one more commit of history is enough, when the origin can be reached.
  git fetch -q --deepen=1 >&2 2>/dev/null || true
  commit="$(git rev-parse --verify -q "${rev}^{commit}")" || {
    printf 'TIDB_OPERATOR_PREVIOUS_BIN=%q\n' "none:this clone has no ${rev}"
    exit 0
  }
fi

src="${target}/previous/src"
bin="${target}/previous/bin"
stamp="${target}/previous/commit"
# Whether REV's controllers are in ${bin} already.
built() {
  [[ -f "${stamp}" && "$(cat "${stamp}")" == "${commit}" ]] || return 1
  local c
  for c in "${controllers[@]}"; do [[ -x "${bin}/${c}" ]] || return 1; done
}
if built; then
  echo "the controllers of ${commit} are built already" >&2
else
  echo "building the controllers of ${rev} (${commit})" >&2
  rm -rf "${src}" "${bin}" "${stamp}"
  mkdir -p "${src}" "${bin}"
  git archive "${commit}" | tar -x -C "${src}"
  packages=()
  for c in "${controllers[@]}"; do packages+=(-p "${c}"); done
  # The controllers report the commit they were built from.
  (cd "${src}" && TIDB_OPERATOR_GIT_COMMIT="${commit}" CARGO_TARGET_DIR="${target}" \
    cargo build --locked --bins "${packages[@]}" >&2)
  for c in "${controllers[@]}"; do
    cp "${target}/debug/${c}" "${bin}/${c}"
  done
  echo "${commit}" >"${stamp}"
fi
printf 'TIDB_OPERATOR_PREVIOUS_BIN=%q\n' "${bin}"
