// Command cert-manager-controller runs cert-manager's own controllers (the
// packages of github.com/cert-manager/cert-manager at the version go.mod pins)
// against one Kubernetes API server, for the TLS tests of the local control plane.
//
// cert-manager publishes its controller's main package in a module of its own
// that the Go module proxy does not serve, so this is a small main of ours around
// the published controller packages: it starts the controllers that issue
// Certificates from SelfSigned and CA Issuers (the key, request, issuing,
// readiness and revision managers, the approver, the Issuer controller and the
// two CertificateRequest issuers) and their informers. There is no leader
// election, no webhook, no ACME, Vault or Venafi.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Controllers register themselves with the controller package in init.
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	// Issuer kinds register themselves with the issuer package in init.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

var enabled = []string{
	"certificaterequests-approver",
	"certificaterequests-issuer-ca",
	"certificaterequests-issuer-selfsigned",
	"certificates-issuing",
	"certificates-key-manager",
	"certificates-readiness",
	"certificates-request-manager",
	"certificates-revision-manager",
	"certificates-trigger",
	"issuers",
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	namespace := flag.String("namespace", "", "namespace to watch (all when empty)")
	flag.Parse()
	if err := run(*kubeconfig, *namespace); err != nil {
		fmt.Fprintf(os.Stderr, "cert-manager-controller: %v\n", err)
		os.Exit(1)
	}
}

func run(kubeconfig, namespace string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")

	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         kubeconfig,
		Namespace:          namespace,
		KubernetesAPIQPS:   100,
		KubernetesAPIBurst: 200,
		IssuerOptions:      controller.IssuerOptions{ClusterResourceNamespace: "kube-system"},
		CertificateOptions: controller.CertificateOptions{
			// cert-manager's defaults: a failed request is retried after an hour at first.
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		return fmt.Errorf("building the controller context: %w", err)
	}

	known := controller.Known()
	var wg sync.WaitGroup
	errs := make(chan error, len(enabled))
	for _, name := range enabled {
		ctor, ok := known[name]
		if !ok {
			return fmt.Errorf("controller %q is not registered in this cert-manager version", name)
		}
		c, err := ctor(factory)
		if err != nil {
			return fmt.Errorf("creating controller %q: %w", name, err)
		}
		wg.Add(1)
		go func(name string, c controller.Interface) {
			defer wg.Done()
			if err := c.Run(5, ctx); err != nil {
				errs <- fmt.Errorf("controller %q: %w", name, err)
			}
		}(name, c)
	}

	// Informers are shared through the base context; start them once every
	// controller has asked for the ones it needs.
	base, err := factory.Build()
	if err != nil {
		return fmt.Errorf("building the informer context: %w", err)
	}
	base.KubeSharedInformerFactory.Start(ctx.Done())
	base.SharedInformerFactory.Start(ctx.Done())
	fmt.Fprintf(os.Stderr, "cert-manager-controller: running %d controllers\n", len(enabled))

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case err := <-errs:
		stop()
		return err
	case <-done:
		return nil
	}
}
