package vm

import (
	"os/exec"
	"testing"
)

func TestLastLineOf(t *testing.T) {
	tests := []struct {
		name, console, want string
	}{
		{name: "empty", console: "", want: ""},
		{name: "plain", console: "one\r\ntwo\r\n\r\n", want: "two"},
		{
			name:    "systemd status",
			console: "x\n[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mdbus.service\x1b[0m.\n",
			want:    "[  OK  ] Started dbus.service.",
		},
		{
			name:    "progress line",
			console: "\x1bM\x1b[K[\x1b[0;1;31m*** \x1b[0m] Job x.service/start running (14s / 1min 30s)",
			want:    "[*** ] Job x.service/start running (14s / 1min 30s)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lastLineOf([]byte(tc.console)); got != tc.want {
				t.Errorf("lastLineOf = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	for _, s := range []string{"plain", "with space", "it's", `"$HOME"`, ""} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("shellQuote(%q) read back as %q (%v)", s, out, err)
		}
	}
}
