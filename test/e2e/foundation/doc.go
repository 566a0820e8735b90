// Package foundation holds the end-to-end tests that prove the test bed
// itself: a real control plane that kubeadm can join, containerd on every
// node running pods through CRI, a LAN between the hosts, and a clean
// teardown. Every later end-to-end test stands on what these prove.
package foundation
