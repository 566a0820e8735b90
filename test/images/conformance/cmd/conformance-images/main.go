// Command conformance-images builds the upstream e2e conformance images and
// CoreDNS as docker-archive tars (package test/images/conformance) and
// prints one "<reference>\t<tar path>" line per image, for a runner to
// import into each node's containerd. With -coredns-manifest it also writes
// the CoreDNS add-on's YAML there.
//
//	go run ./test/images/conformance/cmd/conformance-images [-out DIR] [-cache DIR] \
//	    [-coredns-manifest FILE -cluster-dns 10.96.0.10 -cluster-domain cluster.local]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/berthnode/berth/test/images/conformance"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "conformance-images:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg conformance.Config
	var dns conformance.DNSConfig
	var manifest string
	klog.InitFlags(nil)
	flag.StringVar(&cfg.OutDir, "out", "", "folder for the image tars (default CACHE/images/conformance)")
	flag.StringVar(&cfg.CacheDir, "cache", "", "cache folder for built programs (default $BERTH_CACHE or "+conformance.DefaultCacheDir+")")
	flag.StringVar(&manifest, "coredns-manifest", "", "also write the CoreDNS add-on's YAML to this file")
	flag.StringVar(&dns.ClusterIP, "cluster-dns", "10.96.0.10", "the kube-dns Service's ClusterIP (the kubelets' clusterDNS)")
	flag.StringVar(&dns.Domain, "cluster-domain", "cluster.local", "the cluster domain")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if manifest != "" {
		data, err := conformance.CoreDNSManifest(dns)
		if err != nil {
			return err
		}
		if err := os.WriteFile(manifest, data, 0o644); err != nil {
			return err
		}
	}
	built, err := conformance.Build(ctx, cfg)
	if err != nil {
		return err
	}
	for _, b := range built {
		fmt.Printf("%s\t%s\n", b.Ref, b.Path)
	}
	return nil
}
