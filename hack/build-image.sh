#!/usr/bin/env bash
# Builds the operator image without a container daemon: one OCI image, FROM scratch, holding every
# controller binary (docs/deployment.md says why one image).
#
# Usage: hack/build-image.sh [image] [OUT_DIR]   (OUT_DIR defaults to ${CARGO_TARGET_DIR:-target}/image)
#          1. builds the controllers `--release` as static binaries for this machine's architecture;
#          2. lays out the image's files in OUT_DIR/rootfs (see `rootfs` below);
#          3. builds the image from that directory with buildah into the OCI archive
#             OUT_DIR/tidb-operator-<arch>.oci.tar;
#          4. unpacks the archive again into OUT_DIR/unpacked/{rootfs/,config.json}, so the tests run
#             the binaries that are in the image, and checks that each answers --version.
#        hack/build-image.sh rootfs DIR
#          steps 1 and 2 only, into DIR (the Containerfile's build stage uses this).
#
# The image's files: /cluster-controller, /pd-controller, /tikv-controller, /tidb-controller,
# /backup-controller; /tidb-handover, which PD Pods install from this image for their preStop hook
# (crates/handover); /tidb-secret-syncer, the sidecar of TiCDC Pods under TiCDCDynamicSecretSyncer
# (crates/secret-syncer); /etc/passwd and /etc/group naming the user `nonroot` (65532), which the image
# runs as; /etc/nsswitch.conf; the CA certificates at /etc/ssl/certs/ca-certificates.crt. Nothing
# is written at run time, so a read-only root filesystem works.
# The kubectl plugin (crates/kubectl-tidb) is a client tool and is not in the image: only the
# CONTROLLERS and TOOLS below are built and copied.
#
# Environment:
#   IMAGE_REPOSITORY   name the archive records (default: the name in manifests/image)
#   BUILDAH            the buildah command (default `buildah`; `sudo buildah` where it needs root)
#   SOURCE_DATE_EPOCH  the build date the binaries and the image carry (default: the commit's time,
#                      so building one commit twice gives the same binaries)
#   TIDB_OPERATOR_GIT_COMMIT  the commit the binaries report (default: `git rev-parse HEAD`)
#   IMAGE_PROFILE      the cargo profile of the binaries (default `release`, what is shipped);
#                      the tests build `image-check` (Cargo.toml says how it differs)
#   CARGO_TARGET_DIR   as for cargo
#
# On success it prints, on stdout, shell assignments a caller can eval:
#   IMAGE=... IMAGE_ARCHIVE=... TIDB_OPERATOR_IMAGE_BUNDLE=...
# Progress goes to stderr.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"

CONTROLLERS=(cluster-controller pd-controller tikv-controller tidb-controller backup-controller)
# Binaries the operand Pods take from this image: package name, binary name.
TOOLS=(handover:tidb-handover secret-syncer:tidb-secret-syncer)
# The user of distroless images, so volumes prepared for those fit this one.
NONROOT=65532

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

mode=image
case "${1:-}" in
  image) shift ;;
  rootfs) mode=rootfs; shift; [[ $# -eq 1 ]] || die "usage: hack/build-image.sh rootfs DIR" ;;
  -h|--help) sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

version="$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"$/\1/p' Cargo.toml)"
[[ -n "${version}" ]] || die "no version in [workspace.package] of Cargo.toml"
repository="${IMAGE_REPOSITORY:-$(sed -n 's/^ *newName: *//p' manifests/image/kustomization.yaml)}"
[[ -n "${repository}" ]] || die "no image name in manifests/image/kustomization.yaml"

commit="${TIDB_OPERATOR_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
build_date="$(date -u -d "@${epoch}" +%Y-%m-%dT%H:%M:%SZ)"

target="$(rustc -vV | sed -n 's/^host: //p')"
case "${target}" in
  x86_64-*) arch=amd64 ;;
  aarch64-*) arch=arm64 ;;
  *) die "no image architecture for ${target}" ;;
esac
target_dir="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}"
profile="${IMAGE_PROFILE:-release}"
# cargo's output directory of a profile: `dev` builds into debug/, every other profile by name.
profile_dir="${profile/#dev/debug}"

# Static binaries: glibc linked in (rustls does TLS, so nothing else is needed), so they run in an
# image with no libraries. The explicit --target keeps the flag off build scripts and proc-macros.
build_binaries() {
  log "building ${CONTROLLERS[*]} ${TOOLS[*]#*:} ${version} (${commit:0:12}, ${build_date}) for ${target}, profile ${profile}"
  local packages=() t
  for c in "${CONTROLLERS[@]}"; do packages+=(-p "${c}"); done
  for t in "${TOOLS[@]}"; do packages+=(-p "${t%%:*}"); done
  TIDB_OPERATOR_GIT_COMMIT="${commit}" TIDB_OPERATOR_BUILD_DATE="${build_date}" \
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --profile "${profile}" --locked --target "${target}" --bins "${packages[@]}" >&2
}

# The image's files, in $1 (emptied first).
layout_rootfs() {
  local root="$1" bin="${target_dir}/${target}/${profile_dir}" certs=/etc/ssl/certs/ca-certificates.crt
  [[ -f "${certs}" ]] || die "${certs} is missing (Debian/Ubuntu: apt-get install ca-certificates)"
  rm -rf "${root}"
  mkdir -p "${root}/etc/ssl/certs"
  for c in "${CONTROLLERS[@]}" "${TOOLS[@]#*:}"; do
    install -m 0755 "${bin}/${c}" "${root}/${c}"
  done
  install -m 0644 "${certs}" "${root}/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' \
    "${NONROOT}" "${NONROOT}" >"${root}/etc/passwd"
  printf 'root:x:0:\nnonroot:x:%s:\n' "${NONROOT}" >"${root}/etc/group"
  # Static glibc resolves names itself; this tells it to read /etc/hosts (which the kubelet
  # mounts) before asking DNS.
  printf 'hosts: files dns\n' >"${root}/etc/nsswitch.conf"
  # One mtime for every file, so the layer depends only on the content.
  find "${root}" -exec touch -h -d "@${epoch}" {} +
}

build_binaries
if [[ "${mode}" == rootfs ]]; then
  layout_rootfs "$1"
  exit 0
fi

out="$(mkdir -p "${1:-${target_dir}/image}" && cd "${1:-${target_dir}/image}" && pwd)"
image="${repository}:v${version}"
archive="${out}/tidb-operator-${arch}.oci.tar"
layout_rootfs "${out}/rootfs"

log "building the image ${image} (${arch}) into ${archive}"
read -r -a buildah <<<"${BUILDAH:-buildah}"
command -v "${buildah[-1]}" >/dev/null 2>&1 || die "buildah is not installed (Debian/Ubuntu: apt-get install buildah)"
# A storage of its own, removed afterwards: nothing is left in the machine's image store.
storage="$(mktemp -d)"
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() { "${buildah[@]}" "${store[@]}" rm --all >/dev/null 2>&1 || true; rm -rf "${storage}" 2>/dev/null || true; }
store=(--root "${storage}/root" --runroot "${storage}/run" --storage-driver vfs)
trap cleanup EXIT
container="$("${buildah[@]}" "${store[@]}" from --quiet scratch)"
"${buildah[@]}" "${store[@]}" copy --quiet --chown 0:0 "${container}" "${out}/rootfs/" / >/dev/null
"${buildah[@]}" "${store[@]}" config \
  --arch "${arch}" --os linux \
  --user "${NONROOT}:${NONROOT}" --workingdir / \
  --created-by "hack/build-image.sh" \
  --label "org.opencontainers.image.title=tidb-operator" \
  --label "org.opencontainers.image.description=TiDB operator controllers: ${CONTROLLERS[*]}" \
  --label "org.opencontainers.image.version=${version}" \
  --label "org.opencontainers.image.revision=${commit}" \
  --label "org.opencontainers.image.created=${build_date}" \
  --label "org.opencontainers.image.licenses=Apache-2.0" \
  "${container}"
rm -f "${archive}"
"${buildah[@]}" "${store[@]}" commit --quiet --format oci --timestamp "${epoch}" \
  --disable-compression=false "${container}" "oci-archive:${archive}:${image}" >/dev/null

# The archive unpacked as a runtime would: its manifest's layers in order over an empty root.
log "unpacking ${archive}"
unpacked="${out}/unpacked"
rm -rf "${unpacked}"
mkdir -p "${unpacked}/layout" "${unpacked}/rootfs"
tar -xf "${archive}" -C "${unpacked}/layout"
blob() { printf '%s/layout/blobs/%s' "${unpacked}" "${1/://}"; }
manifest="$(blob "$(jq -r '.manifests[0].digest' "${unpacked}/layout/index.json")")"
jq . "$(blob "$(jq -r '.config.digest' "${manifest}")")" >"${unpacked}/config.json"
for layer in $(jq -r '.layers[].digest' "${manifest}"); do
  tar -xf "$(blob "${layer}")" -C "${unpacked}/rootfs"
done
rm -rf "${unpacked}/layout"
for c in "${CONTROLLERS[@]}" "${TOOLS[@]#*:}"; do
  "${unpacked}/rootfs/${c}" --version >&2 || die "${c} from the image does not run"
done
log "image ${image}: $(du -h "${archive}" | cut -f1) compressed, binaries $(du -ch "${unpacked}"/rootfs/*-controller | tail -1 | cut -f1)"

printf 'IMAGE=%s\n' "${image}"
printf 'IMAGE_ARCHIVE=%s\n' "${archive}"
printf 'TIDB_OPERATOR_IMAGE_BUNDLE=%s\n' "${unpacked}"
