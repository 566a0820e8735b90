// Package pause is home to berth's sandbox ("pause") image: the program in
// cmd/pause and, through Image, that program packed as an image.
//
// Every pod sandbox needs a first process that holds the pod's namespaces
// open, reaps the zombies that other containers in a shared PID namespace
// leave behind, and otherwise sleeps. Runtimes pull that image from a
// registry by default; berth ships its own so that air-gapped nodes, and the
// registry-less test bed, can start pods. The program is a tiny static
// binary: `go generate ./cri/pause` (run by `make build`) compiles it into
// bin/pause, which this package embeds, and Image wraps it in a
// docker-archive tarball that the node imports into its runtime (see
// cri/imageload). A binary built without running the generator still
// compiles; Image then returns ErrNotEmbedded.
package pause
