package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/berthnode/berth/test/images"
)

// DefaultConfig returns the configuration of a bed with the given name and
// node count, with the upstream binaries and the images built (or taken
// from the cache, see CacheDir) and the run folder
// under $BERTH_TESTBED_ROOT or DefaultRoot.
func DefaultConfig(ctx context.Context, name string, nodes int) (Config, error) {
	repo, err := images.RepoRoot()
	if err != nil {
		return Config{}, err
	}
	cache := CacheDir()
	upstream, err := UpstreamDir(ctx, repo)
	if err != nil {
		return Config{}, err
	}
	built, err := images.Build(ctx, filepath.Join(cache, "images"))
	if err != nil {
		return Config{}, fmt.Errorf("build test bed images: %w", err)
	}
	cfg := Config{
		Name:         name,
		Root:         DefaultRoot,
		Nodes:        nodes,
		UpstreamDir:  upstream,
		SandboxImage: images.PauseRef,
	}
	if root := os.Getenv("BERTH_TESTBED_ROOT"); root != "" {
		cfg.Root = root
	}
	for _, b := range built {
		cfg.Images = append(cfg.Images, b.Path)
	}
	return cfg, nil
}

// DefaultCacheDir holds what the bed builds once per machine: the upstream
// binaries (keyed by version) and the images. It is outside the checkout so
// that a fresh clone does not build them again.
const DefaultCacheDir = "/var/cache/berth"

// CacheDir returns $BERTH_CACHE, or DefaultCacheDir.
func CacheDir() string {
	if dir := os.Getenv("BERTH_CACHE"); dir != "" {
		return dir
	}
	return DefaultCacheDir
}

// UpstreamDir returns the folder with the upstream control-plane binaries:
// $BERTH_UPSTREAM_DIR when set, else the cache folder that
// test/tools/build-upstream.sh fills (building them when they are missing,
// which takes many minutes the first time).
func UpstreamDir(ctx context.Context, repo string) (string, error) {
	if dir := os.Getenv("BERTH_UPSTREAM_DIR"); dir != "" {
		return dir, nil
	}
	return BuildCached(ctx, filepath.Join(repo, "test/tools/build-upstream.sh"), filepath.Join(CacheDir(), "upstream"))
}

// BuildCached runs a build script of test/tools that builds into a cache
// folder what is not built there yet and prints the folder on its last
// line, and returns that folder.
func BuildCached(ctx context.Context, script string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Base(script), err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}
