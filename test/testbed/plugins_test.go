package testbed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPluginBinary(t *testing.T) {
	t.Setenv(PluginsEnv, "")
	if _, err := PluginBinary("csimock"); err == nil || !strings.Contains(err.Error(), "build-plugins.sh") {
		t.Errorf("PluginBinary with %s unset: got error %v, want one that says how to build the plugins", PluginsEnv, err)
	}

	dir := t.TempDir()
	t.Setenv(PluginsEnv, dir)
	if _, err := PluginBinary("csimock"); err == nil {
		t.Errorf("PluginBinary of a missing binary: got no error")
	}
	want := filepath.Join(dir, "csimock")
	if err := os.WriteFile(want, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := PluginBinary("csimock")
	if err != nil || got != want {
		t.Errorf("PluginBinary(csimock) = %q, %v; want %q", got, err, want)
	}
}
