package testbed

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/berthnode/berth/kubelet/atomicfile"
	"github.com/berthnode/berth/test/images"
)

// EchoClientPath is where InstallEcho puts the echo program on a host.
const EchoClientPath = "/run/berth/echo"

// InstallEcho puts the echo program of the bed's echo image on host at
// EchoClientPath, so that its client (echo get|tcp|udp) runs on the host
// itself, in the host's network namespace, as traffic a node sends
// (Command, Output). The pods' image is the source, so the client is the
// build the servers run.
func (tb *Testbed) InstallEcho(host string) (string, error) {
	dir, err := tb.HostPath(host, filepath.Dir(EchoClientPath))
	if err != nil {
		return "", err
	}
	var program []byte
	for _, archive := range tb.cfg.Images {
		program, err = images.ReadFile(archive, images.EchoRef, "/echo")
		if !errors.Is(err, images.ErrNotInArchive) {
			break
		}
	}
	switch {
	case err != nil:
		return "", fmt.Errorf("install the echo client on %s: %w", host, err)
	case program == nil:
		return "", fmt.Errorf("install the echo client on %s: none of the bed's image archives holds %s", host, images.EchoRef)
	}
	if err := atomicfile.Write(filepath.Join(dir, filepath.Base(EchoClientPath)), program, 0o755); err != nil {
		return "", fmt.Errorf("install the echo client on %s: %w", host, err)
	}
	return EchoClientPath, nil
}
