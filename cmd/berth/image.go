package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	internalapi "k8s.io/cri-api/pkg/apis"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/cri/imageload"
)

const imageSynopsis = `Usage: berth image load [--address SOCKET] FILE.tar...

Import docker-archive or OCI image tarballs into containerd's k8s.io namespace
(the one CRI uses), unpacked and ready to run, for nodes without a registry.
`

// cmdImage implements "berth image load".
func cmdImage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "load" {
		return usageError(stderr, "berth image", "the only subcommand is load")
	}
	fs := flag.NewFlagSet("berth image load", flag.ContinueOnError)
	address := fs.String("address", imageload.DefaultAddress, "containerd's `SOCKET`")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			fmt.Fprint(stdout, commandUsage(fs, imageSynopsis))
			return exitOK
		}
		return usageError(stderr, fs.Name(), err.Error())
	}
	if fs.NArg() == 0 {
		return usageError(stderr, fs.Name(), "give at least one image tarball")
	}
	cfg := imageload.Config{Address: *address}
	for _, file := range fs.Args() {
		names, err := imageload.LoadFile(ctx, cfg, file)
		if err != nil {
			fmt.Fprintf(stderr, "berth: %v\n", err)
			return exitFailure
		}
		for _, n := range names {
			fmt.Fprintf(stdout, "loaded %s from %s\n", n, file)
		}
	}
	return exitOK
}

// ensureSandboxImage makes sure the runtime has its sandbox image, from
// berth's embedded pause image if need be, so that an air-gapped node starts
// pods. The image is the one the runtime is configured with (containerd
// reports it in its verbose status), or --pod-infra-container-image.
func ensureSandboxImage(ctx context.Context, runtime internalapi.RuntimeService, endpoint, flagImage string) {
	log := klog.FromContext(ctx)
	ref := flagImage
	if ref == "" {
		st, err := runtime.Status(ctx, true)
		if err == nil {
			var cfg struct {
				SandboxImage string `json:"sandboxImage"`
			}
			if json.Unmarshal([]byte(st.GetInfo()["config"]), &cfg) == nil {
				ref = cfg.SandboxImage
			}
		}
	}
	if ref == "" {
		log.Info("Warning: the runtime does not report its sandbox image; not ensuring it is present")
		return
	}
	cfg := imageload.Config{Address: strings.TrimPrefix(endpoint, "unix://")}
	if err := imageload.EnsureSandboxImage(ctx, cfg, ref); err != nil {
		log.Error(err, "Could not ensure the sandbox image is present; pods need it to start", "image", ref)
	}
}
