package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
)

// kubernetesVersion is the Kubernetes release whose kubelet and kube-proxy
// berth stands in for: the release of the k8s.io libraries in go.mod
// (library v0.X.Y belongs to Kubernetes v1.X.Y; a test keeps them in step).
const kubernetesVersion = "v1.37.2"

const versionSynopsis = `Usage: berth version

Print berth's version, the Kubernetes release it is compatible with, the Go
version it was built with and its source commit.
`

// cmdVersion implements "berth version".
func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("berth version", flag.ContinueOnError)
	if ok, code := parseFlags(fs, versionSynopsis, args, stdout, stderr); !ok {
		return code
	}
	fmt.Fprintf(stdout, "berth %s (kubernetes %s compatible, %s, commit %s)\n",
		version, kubernetesVersion, runtime.Version(), commit)
	return exitOK
}
