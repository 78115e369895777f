#!/usr/bin/env bash
# The steps of a release that are not building the image (hack/build-image.sh does that).
#
# Usage:
#   hack/release.sh set-version X.Y.Z   sets the version everywhere it is written: Cargo.toml's
#                                       [workspace.package] (what every binary reports), Cargo.lock,
#                                       and the image tag in manifests/image (what every overlay
#                                       installs), and turns CHANGELOG.md's Unreleased section
#                                       into this version's
#   hack/release.sh check vX.Y.Z        fails unless the tag, Cargo.toml, manifests/image and a
#                                       CHANGELOG.md section all name this version
#   hack/release.sh notes X.Y.Z         prints the CHANGELOG.md section of the version
#   hack/release.sh manifests DIR       renders install.yaml (the production overlay: CRDs,
#                                       namespace, every controller) and crds.yaml into DIR
#   hack/release.sh krew X.Y.Z DIR      writes DIR/tidb.yaml, the krew manifest of the kubectl
#                                       plugin, from hack/krew/tidb.yaml and the plugin archives
#                                       DIR/kubectl-tidb-linux-{amd64,arm64}.tar.gz (their SHA-256)
#
# kubectl (1.27+, for its Kustomize v5) is taken from $KUBECTL, else PATH.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

IMAGE_COMPONENT=manifests/image/kustomization.yaml
SEMVER='^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$'

workspace_version() {
  sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"$/\1/p' Cargo.toml
}
image_tag() { sed -n 's/^ *newTag: *//p' "${IMAGE_COMPONENT}"; }

# The lines of CHANGELOG.md under `## [X.Y.Z]`, up to the next `## ` heading.
notes() {
  awk -v v="$1" '
    /^## / { if (inside) exit; inside = index($0, "## [" v "]") == 1; next }
    inside
  ' CHANGELOG.md
}

case "${1:-}" in
  set-version)
    v="${2:-}"
    [[ "${v}" =~ ${SEMVER} ]] || die "usage: hack/release.sh set-version X.Y.Z"
    sed -i '/^\[workspace.package\]/,/^\[/ s/^version = ".*"$/version = "'"${v}"'"/' Cargo.toml
    sed -i 's/^\( *newTag: *\).*$/\1v'"${v}"'/' "${IMAGE_COMPONENT}"
    # Rewrites the workspace members' versions in Cargo.lock, and nothing else.
    cargo update --workspace --offline
    # What was Unreleased becomes this version's section.
    if ! grep -q "^## \[${v}\]" CHANGELOG.md; then
      sed -i 's/^## \[Unreleased\]$/## [Unreleased]\n\n## ['"${v}"'] - '"$(date -u +%F)"'/' CHANGELOG.md
    fi
    ;;
  check)
    tag="${2:-}"
    [[ "${tag}" == v* && "${tag#v}" =~ ${SEMVER} ]] || die "usage: hack/release.sh check vX.Y.Z"
    v="${tag#v}"
    [[ "$(workspace_version)" == "${v}" ]] ||
      die "Cargo.toml says $(workspace_version), the tag ${tag} (run hack/release.sh set-version ${v})"
    [[ "$(image_tag)" == "${tag}" ]] ||
      die "${IMAGE_COMPONENT} tags the image $(image_tag), not ${tag}"
    [[ -n "$(notes "${v}")" ]] || die "CHANGELOG.md has no section \"## [${v}]\""
    echo "${tag}: Cargo.toml, ${IMAGE_COMPONENT} and CHANGELOG.md agree"
    ;;
  notes)
    [[ -n "${2:-}" ]] || die "usage: hack/release.sh notes X.Y.Z"
    out="$(notes "${2#v}")"
    [[ -n "${out}" ]] || die "CHANGELOG.md has no section \"## [${2#v}]\""
    printf '%s\n' "${out}"
    ;;
  manifests)
    dir="${2:-}"
    [[ -n "${dir}" ]] || die "usage: hack/release.sh manifests DIR"
    mkdir -p "${dir}"
    kubectl="${KUBECTL:-kubectl}"
    "${kubectl}" kustomize manifests/overlays/production >"${dir}/install.yaml"
    "${kubectl}" kustomize manifests/crd >"${dir}/crds.yaml"
    echo "wrote ${dir}/install.yaml and ${dir}/crds.yaml" >&2
    ;;
  krew)
    v="${2:-}" dir="${3:-}"
    [[ "${v#v}" =~ ${SEMVER} && -n "${dir}" ]] || die "usage: hack/release.sh krew X.Y.Z DIR"
    manifest="$(cat hack/krew/tidb.yaml)"
    manifest="${manifest//'${VERSION}'/${v#v}}"
    for arch in amd64 arm64; do
      archive="${dir}/kubectl-tidb-linux-${arch}.tar.gz"
      [[ -f "${archive}" ]] || die "no ${archive}: the release builds one per architecture"
      sum="$(sha256sum "${archive}" | awk '{print $1}')"
      placeholder="\${SHA256_LINUX_${arch^^}}"
      manifest="${manifest//${placeholder}/${sum}}"
    done
    [[ "${manifest}" != *'${'* ]] || die "hack/krew/tidb.yaml has a placeholder this script does not fill"
    printf '%s\n' "${manifest}" >"${dir}/tidb.yaml"
    echo "wrote ${dir}/tidb.yaml" >&2
    ;;
  *)
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    [[ "${1:-}" == -h || "${1:-}" == --help ]] || exit 2
    ;;
esac
