// Package testbed builds and tears down berth's end-to-end test bed: a real
// Kubernetes control plane built from upstream source and a number of node
// hosts, each running its own containerd, all on one private LAN.
//
// Every host is a set of namespaces pinned as files under the run folder:
//
//	lan      network namespace holding the LAN bridge (br0, 192.168.200.1/24)
//	cp       network + mount + UTS namespace: etcd, kube-apiserver,
//	         kube-controller-manager, kube-scheduler, started from the static
//	         pod manifests `kubeadm init phase` writes
//	nodeN    network + mount + UTS namespace: containerd, and later berth
//
// A host's mount namespace overlays /etc and /var with folders of its own and
// mounts a fresh /run, then bind-mounts the paths a worker uses
// (/etc/kubernetes, /var/lib/kubelet, /var/lib/containerd, /run/containerd,
// ...) from the host's folder, so that a real `kubeadm join` run on a node
// writes only that node's files, and the test can read them from the outside.
//
// All traffic stays inside these namespaces: the test process itself reaches
// the apiserver through a dialer that opens its sockets inside a host's
// network namespace (see Testbed.DialContext), and commands "on" a host are
// run with nsenter (see Testbed.Command), as kind's `docker exec` does.
//
// Processes are started detached and tracked by a cgroup per host, so the
// bed outlives the command that brought it up (`testbed up`) and `down`, or
// the next `up` after a crash, finds and stops everything.
package testbed
