package bootstrap

import (
	"context"
	"crypto/tls"
	"fmt"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/certificate"
)

// Rotate renews the node's client certificate before it expires (at 70 to
// 90 % of its lifetime, as kubelet does), with the node's own credentials,
// until ctx ends. The new pair replaces kubelet-client-current.pem; clients
// built from the node's kubeconfig pick it up from the file.
func Rotate(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bootstrap config: %w", err)
	}
	store, err := newStore(cfg)
	if err != nil {
		return err
	}
	mgr, err := certificate.NewManager(&certificate.Config{
		ClientsetFn: func(*tls.Certificate) (kubernetes.Interface, error) {
			rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
			if err != nil {
				return nil, err
			}
			return kubernetes.NewForConfig(rc)
		},
		Template:         clientTemplate(cfg.NodeName),
		SignerName:       certificatesv1.KubeAPIServerClientKubeletSignerName,
		Usages:           clientUsages,
		CertificateStore: store,
		Name:             "kubelet-client",
		Ctx:              &ctx,
	})
	if err != nil {
		return fmt.Errorf("client certificate rotation: %w", err)
	}
	mgr.Start()
	<-ctx.Done()
	mgr.Stop()
	return nil
}
