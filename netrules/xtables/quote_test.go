package xtables

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestQuoteComment(t *testing.T) {
	for in, want := range map[string]string{
		"berth":          "berth",
		"a_b-c":          "a_b-c",
		"ns/svc:port":    `"ns/svc:port"`,
		"two words":      `"two words"`,
		`say "hi" \ 'x'`: `"say \"hi\" \\ \'x\'"`,
		"":               `""`,
	} {
		if got := QuoteComment(in); got != want {
			t.Errorf("QuoteComment(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestRestoreErrorLines(t *testing.T) {
	payload := []byte("*nat\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j NOPE\nCOMMIT\n")
	for _, tc := range []struct {
		name    string
		stderr  string
		line    int
		context []string
	}{
		{
			name:    "nf_tables parse error",
			stderr:  "iptables-restore v1.8.9 (nf_tables): Chain 'NOPE' does not exist\nError occurred at line: 5\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n",
			line:    5,
			context: []string{"3: :B - [0:0]", "4: -A A -j B", "5: -A B -j NOPE", "6: COMMIT", "7: "},
		},
		{
			name:    "nf_tables commit error",
			stderr:  "iptables-restore v1.8.9 (nf_tables): \nline 2: CHAIN_DEL failed (Device or resource busy): chain A\n",
			line:    2,
			context: []string{"1: *nat", "2: :A - [0:0]", "3: :B - [0:0]", "4: -A A -j B"},
		},
		{
			name:    "legacy",
			stderr:  "iptables-restore: line 1 failed\n",
			line:    1,
			context: []string{"1: *nat", "2: :A - [0:0]", "3: :B - [0:0]"},
		},
		{name: "no line", stderr: "iptables-restore: unable to initialize table 'nat'\n"},
		{name: "a line number out of range", stderr: "line 99 failed", line: 99},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NewRestoreError(TableNAT, payload, &ExitError{Command: "iptables-restore", Code: 1, Stderr: tc.stderr})
			if err.Line != tc.line {
				t.Errorf("Line = %d, want %d", err.Line, tc.line)
			}
			if diff := cmp.Diff(tc.context, err.Context); diff != "" {
				t.Errorf("Context (-want +got):\n%s", diff)
			}
			var ee *ExitError
			if !errors.As(err, &ee) || !strings.Contains(err.Error(), "nat") {
				t.Errorf("error %q does not wrap the ExitError or name the table", err)
			}
		})
	}
}
