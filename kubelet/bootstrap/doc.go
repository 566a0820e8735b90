// Package bootstrap gives the node its own identity, as kubelet's TLS
// bootstrap does: when the node's kubeconfig is missing or its client
// certificate has expired, it requests a certificate for
// system:node:<name> through the CertificateSigningRequest API with the
// bootstrap credentials kubeadm join wrote, waits for approval, stores the
// pair the way kubelet does (<cert-dir>/kubelet-client-current.pem, a
// symlink to a timestamped file) and writes a kubeconfig pointing at it.
// Later it rotates the certificate before it expires; client-go reloads the
// files, so connections move to the new identity without a restart.
package bootstrap
