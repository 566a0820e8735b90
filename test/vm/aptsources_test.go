package vm

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSources(t *testing.T) {
	deb822 := `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://deb.debian.org/debian-security/
Suites: bookworm-security
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
`
	oneLine := `# comment
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.example/debian bookworm main contrib
deb-src http://mirror.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main # trailing
`
	tests := []struct {
		name                string
		srcs                []aptSource
		wantMirror, wantSec string
		wantErr             bool
	}{
		{
			name:       "deb822",
			srcs:       parseDeb822Sources(deb822),
			wantMirror: "http://deb.debian.org/debian",
			wantSec:    "http://deb.debian.org/debian-security",
		},
		{
			name:       "one line",
			srcs:       parseOneLineSources(oneLine),
			wantMirror: "http://mirror.example/debian",
			wantSec:    "http://security.example/debian-security",
		},
		{
			name:    "no source of the suite",
			srcs:    parseOneLineSources("deb http://deb.debian.org/debian trixie main\n"),
			wantErr: true,
		},
		{
			name:    "only a disabled source",
			srcs:    parseDeb822Sources("Enabled: no\nTypes: deb\nURIs: http://x/debian\nSuites: bookworm\n"),
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mirror, sec, err := pickMirrors(tc.srcs, "bookworm")
			if (err != nil) != tc.wantErr {
				t.Fatalf("pickMirrors error = %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff([]string{tc.wantMirror, tc.wantSec}, []string{mirror, sec}); diff != "" {
				t.Errorf("mirror, security (-want +got):\n%s", diff)
			}
		})
	}
}
