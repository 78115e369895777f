//go:build tools

// Package tools pins kwok and kwokctl, which hack/build-tools.sh builds for
// the local control plane.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
	_ "sigs.k8s.io/kwok/cmd/kwokctl"
)
