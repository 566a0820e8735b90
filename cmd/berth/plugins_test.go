package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/kubelet/plugins"
)

func TestPluginWatcherCreatesDirectories(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	root := t.TempDir()
	w, err := newPluginWatcher(root, map[string]plugins.Handler{}, testingclock.NewFakeClock(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	err = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		return w.Healthy() == nil, nil
	})
	if err != nil {
		t.Fatalf("Waiting for the watcher to be healthy: %v (health: %v)", err, w.Healthy())
	}
	for _, dir := range []string{"plugins", "plugins_registry"} {
		fi, err := os.Stat(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o750 {
			t.Errorf("%s: mode %s, want a directory with mode 0750", dir, fi.Mode())
		}
	}
}

func TestPluginWatcherFailureDoesNotStopBerth(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	// A file where the root directory should be: nothing can be created.
	root := filepath.Join(t.TempDir(), "root")
	if err := os.WriteFile(root, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := newPluginWatcher(root, nil, testingclock.NewFakeClock(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.run(ctx); err != nil {
		t.Errorf("run = %v, want nil: the rest of berth goes on", err)
	}
	if err := w.Healthy(); err == nil || !strings.Contains(err.Error(), "plugin registration directory") {
		t.Errorf("Healthy() = %v, want the registration directory's error", err)
	}
}
