// Package conformance runs the upstream Kubernetes e2e suite's node-related
// selection against a test bed whose node agent is berth (or, to compare,
// the upstream kubelet and kube-proxy), and summarises the JUnit reports.
//
// The selection is every [Conformance] spec of [sig-node] and [sig-network],
// the [sig-storage] [Conformance] specs of the volume kinds a node serves
// itself (emptyDir, configMap, secret, downwardAPI, projected, hostPath), and
// the [sig-cli] specs of logs, exec and port-forward, which go through the
// node's streaming server. It is computed from a ginkgo dry run of e2e.test
// (Select), so that its size is printed before anything runs, and handed to
// ginkgo as one focus expression of the exact spec texts.
//
// A run brings a bed up (test/testbed), joins its nodes with the chosen
// agent, imports the e2e images into every node's containerd, deploys
// CoreDNS at the kubelet configuration's clusterDNS address, and runs the
// parallel specs with several ginkgo processes, then the [Serial] ones alone.
// The suite runs inside the bed's LAN namespace, so every address it talks
// to is one of the bed's.
package conformance
