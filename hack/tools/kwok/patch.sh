#!/usr/bin/env bash
# Prepares a patched copy of kwok's source in DIR and prints the `go build` flag that builds it
# (hack/build-tools.sh calls this). One change to kwok v0.8.0's fake kubelet:
#
# kwok finishes a terminating Pod by deleting it by name with a zero grace period, from a work
# queue. Under load that queue lags, and a delete queued for a Pod runs after its controller has
# already created the next Pod of the same name (a TiKV or PD instance's Pod keeps its name): the
# new Pod is deleted at once, and each such delete queues the next. A kubelet deletes with the
# Pod's UID as a precondition and so never removes a successor; so does this build.
#
# Usage: patch.sh DIR   (run in this module's directory)
set -euo pipefail
dir="$1"
go mod download sigs.k8s.io/kwok
module="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
[[ -n "${module}" ]] || { echo "patch.sh: kwok's module is not in the module cache" >&2; exit 1; }
mkdir -p "${dir}"
cp -R "${module}" "${dir}/kwok"
chmod -R u+w "${dir}/kwok"
file="${dir}/kwok/pkg/kwok/controllers/pod_controller.go"
sed -i \
  -e 's#^\t"k8s.io/apimachinery/pkg/api/meta"$#\tapierrors "k8s.io/apimachinery/pkg/api/errors"\n\t"k8s.io/apimachinery/pkg/api/meta"#' \
  -e 's#^\terr := c.typedClient.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, deleteOpt)$#\topt := deleteOpt\n\topt.Preconditions = metav1.NewUIDPreconditions(string(pod.UID))\n\terr := c.typedClient.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, opt)\n\tif apierrors.IsNotFound(err) || apierrors.IsConflict(err) {\n\t\treturn nil\n\t}#' \
  "${file}"
# Both edits must have applied, or the build would silently be kwok's own.
grep -q 'apierrors "k8s.io/apimachinery/pkg/api/errors"' "${file}" \
  && grep -q 'NewUIDPreconditions(string(pod.UID))' "${file}" \
  || { echo "patch.sh: kwok's pod_controller.go is not the one this patch was written for" >&2; exit 1; }
# This module's go.mod and go.sum, with kwok taken from the patched copy.
cp go.mod go.sum "${dir}/"
printf '\nreplace sigs.k8s.io/kwok => %s\n' "${dir}/kwok" >>"${dir}/go.mod"
printf -- '-modfile=%s\n' "${dir}/go.mod"
