package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no command", nil, 2, "usage: testbed"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"bad flag", []string{"--nodes=2", "up"}, 2, "flag provided but not defined"},
		{"exec without --", []string{"exec", "node1", "true"}, 2, "usage: testbed"},
		{"exec without command", []string{"exec", "node1", "--"}, 2, "usage: testbed"},
		{"status of a missing bed", []string{"--root", "/nonexistent", "status"}, 1, "open test bed berth"},
		{"down of a missing bed", []string{"--root", "/nonexistent", "down"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tt.args, code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("run(%q) stderr = %q, want it to contain %q", tt.args, stderr.String(), tt.wantErr)
			}
		})
	}
}
