package upstream

import (
	"context"
	"os"
	"path/filepath"

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
	return testbed.BuildCached(ctx, filepath.Join(repo, "test/tools/build-e2e.sh"),
		filepath.Join(testbed.CacheDir(), "upstream"), "kubelet", "kube-proxy")
}
