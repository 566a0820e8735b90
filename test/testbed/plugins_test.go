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

func TestReadCSICalls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	if calls, err := ReadCSICalls(path); err != nil || calls != nil {
		t.Errorf("ReadCSICalls of a missing file = %v, %v; want none", calls, err)
	}
	lines := `{"time":"2026-01-02T03:04:05Z","method":"NodeStageVolume","volume_id":"1","staging_target_path":"/s","code":"OK","duration_ms":0.5}
{"time":"2026-01-02T03:04:06Z","method":"NodePublishVolume","volume_id":"1","staging_target_path":"/s","target_path":"/t","code":"Internal","error":"injected","duration_ms":0.1}
`
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	calls, err := ReadCSICalls(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || calls[0].Method != "NodeStageVolume" || calls[0].StagingTargetPath != "/s" ||
		calls[1].TargetPath != "/t" || calls[1].Code != "Internal" || calls[1].Error != "injected" || calls[0].DurationMS != 0.5 {
		t.Errorf("ReadCSICalls = %+v", calls)
	}
	if err := os.WriteFile(path, []byte("{not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCSICalls(path); err == nil {
		t.Errorf("ReadCSICalls of a bad line: got no error")
	}
}
