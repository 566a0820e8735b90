// Package join makes a Linux machine a worker of a kubeadm cluster, as
// `kubeadm join` does for a worker, without kubeadm: berth join.
//
// Joining has two halves. Discovery makes the node trust the cluster: the
// kube-public/cluster-info ConfigMap is fetched anonymously (over TLS, but
// without verifying the server, since the node knows no CA yet), the JWS
// signature the bootstrap signer put in it for the token's ID is checked
// with the token's secret (HS256 over the detached kubeconfig payload), the
// CA it names is checked against the operator's public key pins
// (--discovery-token-ca-cert-hash sha256:<hex of the SubjectPublicKeyInfo>),
// and the ConfigMap is fetched once more through a client that trusts only
// that CA, to make sure the server holds the CA's key. Then, with the
// bootstrap token as credential, the node reads the cluster's kubelet
// configuration (kube-system/kubelet-config, and kube-system/kubeadm-config
// for the cluster name and the defaults kubeadm derives from it) and writes
// the files kubeadm join writes, with the same paths and formats:
//
//	/etc/kubernetes/pki/ca.crt              the cluster CA (kept if present)
//	/etc/kubernetes/bootstrap-kubelet.conf  the bootstrap kubeconfig (token)
//	/var/lib/kubelet/kubeadm-flags.env      node-specific kubelet flags
//	/var/lib/kubelet/instance-config.yaml   the node's own configuration
//	/var/lib/kubelet/config.yaml            the KubeletConfiguration
//
// The other half, the node's own identity, is TLS bootstrap through the
// CertificateSigningRequest API, which package bootstrap does when berth
// starts.
//
// Every check refuses with an error that says what to compare: a token of
// the wrong form, a missing or invalid signature, a CA whose hash matches no
// pin (the actual hash is printed), a cluster-info that changed between the
// two fetches, a node already joined to another cluster, or a Ready node of
// the same name. Errors wrap the package's sentinels (ErrBadSignature, ...)
// so callers can tell them apart with errors.Is.
package join
