package join

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
)

// clientCertLink is kubelet's link to its current client certificate and
// key, in its certificate directory.
const clientCertLink = "kubelet-client-current.pem"

// Errors of a node that already has credentials.
var (
	// ErrOtherCluster means the node holds credentials or a CA of another
	// cluster.
	ErrOtherCluster = errors.New("this node holds another cluster's credentials: reset it (kubeadm reset) or join with --force, which removes them")
	// ErrOtherNode means the node already belongs to the cluster under
	// another name.
	ErrOtherNode = errors.New("this node already belongs to the cluster under another name: join with that name, or with --force to take a new identity")
)

// priorJoin is what an earlier join left on the node.
type priorJoin struct {
	// member tells that the node's kubeconfig belongs to the discovered
	// cluster, as the node being joined: joining again keeps its identity.
	member bool
	// keepCA tells that ca.crt already holds the discovered CA.
	keepCA bool
	// conflict, if set, is why the node cannot join as it is.
	conflict error
	// stale are the files a forced join removes: another cluster's or
	// another node's credentials.
	stale []string
}

// inspectNode reads what an earlier join left, against the discovered CA
// and the node's name.
func inspectNode(paths Paths, ca []*x509.Certificate, nodeName string) priorJoin {
	var p priorJoin
	caPEM, err := os.ReadFile(paths.CACert)
	switch {
	case err == nil && sameCA(caPEM, ca):
		p.keepCA = true
	case err == nil || !errors.Is(err, fs.ErrNotExist):
		// Overwritten, not removed, when forced.
		p.conflict = fmt.Errorf("%w: %s is not the cluster's CA", ErrOtherCluster, paths.CACert)
	}
	if _, err := os.Stat(paths.KubeletKubeconfig); errors.Is(err, fs.ErrNotExist) {
		return p
	}
	nodeCA, identity, err := readKubeconfig(paths.KubeletKubeconfig)
	switch {
	case err != nil:
		p.conflict = fmt.Errorf("%w: %s cannot be read (%w)", ErrOtherCluster, paths.KubeletKubeconfig, err)
	case !sameCA(nodeCA, ca):
		p.conflict = fmt.Errorf("%w: %s trusts another CA", ErrOtherCluster, paths.KubeletKubeconfig)
	case identity != "" && identity != nodeName:
		p.conflict = fmt.Errorf("%w: %s is node %q, not %q", ErrOtherNode, paths.KubeletKubeconfig, identity, nodeName)
	default:
		p.member = true
		return p
	}
	p.stale = append(p.stale, paths.KubeletKubeconfig)
	link := filepath.Join(paths.CertDir, clientCertLink)
	if _, err := os.Lstat(link); err == nil {
		p.stale = append(p.stale, link)
	}
	return p
}

// readKubeconfig returns the CA bundle a kubeconfig trusts and, when its
// client certificate is readable, the node it identifies
// (system:node:<name>).
func readKubeconfig(path string) (caPEM []byte, node string, err error) {
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, "", err
	}
	cluster, err := currentCluster(kc)
	if err != nil {
		return nil, "", err
	}
	caPEM = cluster.CertificateAuthorityData
	if len(caPEM) == 0 && cluster.CertificateAuthority != "" {
		if caPEM, err = os.ReadFile(resolve(path, cluster.CertificateAuthority)); err != nil {
			return nil, "", fmt.Errorf("CA: %w", err)
		}
	}
	if ctx := kc.Contexts[kc.CurrentContext]; ctx != nil {
		if user := kc.AuthInfos[ctx.AuthInfo]; user != nil {
			certPEM := user.ClientCertificateData
			if len(certPEM) == 0 && user.ClientCertificate != "" {
				certPEM, _ = os.ReadFile(resolve(path, user.ClientCertificate))
			}
			node = nodeOf(certPEM)
		}
	}
	return caPEM, node, nil
}

// resolve makes a path of a kubeconfig relative to the kubeconfig's folder.
func resolve(kubeconfig, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(kubeconfig), p)
}

// nodeOf returns the node name of a node client certificate, or "".
func nodeOf(certPEM []byte) string {
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		return ""
	}
	name, ok := strings.CutPrefix(certs[0].Subject.CommonName, "system:node:")
	if !ok {
		return ""
	}
	return name
}

// sameCA tells whether the PEM bundle holds one of the CA certificates.
func sameCA(bundle []byte, ca []*x509.Certificate) bool {
	certs, err := certutil.ParseCertsPEM(bundle)
	if err != nil {
		return false
	}
	for _, c := range certs {
		for _, want := range ca {
			if bytes.Equal(c.Raw, want.Raw) {
				return true
			}
		}
	}
	return false
}
