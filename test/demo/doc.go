// Package demo holds the steps `make demo` (testbed demo) shows an operator
// who has never seen berth, once the bed is up and its nodes joined: berth
// as the kubelet (a Deployment of echo pods runs on the nodes) and berth as
// kube-proxy (a ClusterIP Service in front of them balances requests sent
// from a node round-robin, and `berth rules explain` shows the rules). The
// end-to-end tests run the same steps and check what they print, so the
// demo cannot quietly stop showing what it claims.
package demo
