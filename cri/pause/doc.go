// Package pause is home to berth's sandbox ("pause") image program, in
// cmd/pause.
//
// Every pod sandbox needs a first process that holds the pod's namespaces
// open, reaps the zombies that other containers in a shared PID namespace
// leave behind, and otherwise sleeps. Runtimes pull that image from a
// registry by default; berth ships its own so that air-gapped nodes, and the
// registry-less test bed, can start pods: the program is a tiny static binary
// that test/images packs into a docker-archive tarball which the node imports
// into its runtime.
package pause
