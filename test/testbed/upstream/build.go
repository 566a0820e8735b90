package upstream

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// BinDir returns the folder with the upstream kubelet and kube-proxy:
// $BERTH_E2E_DIR when set, else the cache folder test/tools/build-e2e.sh
// fills (building them when they are missing, which takes many minutes the
// first time).
func BinDir(ctx context.Context) (string, error) {
	if dir := os.Getenv("BERTH_E2E_DIR"); dir != "" {
		return dir, nil
	}
	repo, err := images.RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "test/tools/build-e2e.sh"),
		filepath.Join(testbed.CacheDir(), "upstream"), "kubelet", "kube-proxy")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build upstream kubelet and kube-proxy: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}
