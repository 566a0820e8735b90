// Package podruntimetest builds the pods and observed runtime states that
// tests of the runtime side and of pod status start from: a sandbox with
// containers running or exited, container specs and pods around them.
package podruntimetest
