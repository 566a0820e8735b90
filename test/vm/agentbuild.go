package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/berthnode/berth/test/images"
)

// agentPackage is the guest agent's main package.
const agentPackage = "./test/vm/cmd/berth-vm-agent"

// BuildAgent compiles the guest agent statically from this module's source
// into dir and returns the binary's path. Go's build cache makes a second
// build cheap.
func BuildAgent(ctx context.Context, dir string) (string, error) {
	root, err := images.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("build the VM agent: %w", err)
	}
	out := filepath.Join(dir, "berth-vm-agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, agentPackage)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the VM agent: %w: %s", err, b)
	}
	return out, nil
}
