//go:build tools

// Package tools pins prometheus and promtool, which hack/build-tools.sh builds
// for the monitoring tests (rule unit tests and the end-to-end scrape).
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
