// Package cluster holds what the end-to-end tests do with the test bed's
// cluster again and again: namespaces per test, polling for pods and
// endpoints with deadlines, one-shot client pods whose output is read from
// the node's log files.
package cluster
