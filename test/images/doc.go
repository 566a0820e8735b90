// Package images builds the test bed's container images as docker-archive
// tarballs, since the test bed has no registry: berth's pause program
// (berth.local/pause, the sandbox image), Debian's static busybox
// (berth.local/busybox, for shell-based pods) and the echo program
// (berth.local/echo, which answers with the pod's name and the client's
// address). The programs are compiled from this module's source; the tars
// are rewritten only when what they would hold changes. The building blocks
// (GoBuild, ReadStatic, ListApplets, BusyboxFiles, PauseImage, WriteCached)
// and ReadArchive, which reads a tar back for checks, serve the upstream e2e
// images of test/images/conformance too.
package images
