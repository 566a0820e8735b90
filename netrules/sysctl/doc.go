// Package sysctl reads and writes the kernel parameters berth depends on
// (/proc/sys), in the caller's network namespace for the per-namespace ones.
package sysctl
