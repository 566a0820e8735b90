package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
)

// both are the modes berth has backends for.
var both = []Mode{ModeIPTables, ModeIPVS}

func TestChooseMode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      ModeInputs
		want    ModeChoice
		wantErr error
	}{
		{"nothing set: the default", ModeInputs{},
			ModeChoice{Mode: ModeIPTables, Source: SourceDefault}, nil},
		{"the ConfigMap alone", ModeInputs{ConfigMap: ModeIPVS},
			ModeChoice{Mode: ModeIPVS, Source: SourceConfigMap}, nil},
		{"the file over the ConfigMap", ModeInputs{File: ModeIPTables, ConfigMap: ModeIPVS},
			ModeChoice{Mode: ModeIPTables, Source: SourceFile, Ignored: []SourcedMode{{ModeIPVS, SourceConfigMap}}}, nil},
		{"berth over both", ModeInputs{Berth: ModeIPVS, File: ModeIPTables, ConfigMap: ModeNFTables},
			ModeChoice{Mode: ModeIPVS, Source: SourceBerth, Ignored: []SourcedMode{{ModeIPTables, SourceFile}, {ModeNFTables, SourceConfigMap}}}, nil},
		{"agreeing sources are no conflict", ModeInputs{Berth: ModeIPVS, ConfigMap: ModeIPVS},
			ModeChoice{Mode: ModeIPVS, Source: SourceBerth}, nil},
		{"a losing source's unknown mode is only ignored", ModeInputs{Berth: ModeIPTables, ConfigMap: "kernelspace"},
			ModeChoice{Mode: ModeIPTables, Source: SourceBerth, Ignored: []SourcedMode{{"kernelspace", SourceConfigMap}}}, nil},
		{"the ConfigMap's nftables falls back", ModeInputs{ConfigMap: ModeNFTables},
			ModeChoice{Mode: ModeIPTables, Source: SourceDefault, FallbackFrom: ModeNFTables}, nil},
		{"berth's nftables fails", ModeInputs{Berth: ModeNFTables, ConfigMap: ModeIPVS},
			ModeChoice{}, ErrModeUnavailable},
		{"the file's nftables fails", ModeInputs{File: ModeNFTables},
			ModeChoice{}, ErrModeUnavailable},
		{"nftables once available", ModeInputs{ConfigMap: ModeNFTables, Available: []Mode{ModeNFTables}},
			ModeChoice{Mode: ModeNFTables, Source: SourceConfigMap}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.in.Available == nil {
				tc.in.Available = both
			}
			got, err := ChooseMode(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ChooseMode(%+v): err = %v, want %v", tc.in, err, tc.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), string(tc.in.Berth+tc.in.File)) {
					t.Errorf("error %q does not name the mode asked for", err)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ChooseMode(%+v) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
	if _, err := ChooseMode(ModeInputs{ConfigMap: "kernelspace", Available: both}); err == nil || !strings.Contains(err.Error(), string(SourceConfigMap)) {
		t.Errorf("the winning source's unknown mode: err = %v, want an error naming the source", err)
	}
}

// logLines captures what a logger writes, one line per call.
func logLines() (*[]string, func(prefix, args string)) {
	var lines []string
	return &lines, func(_, args string) { lines = append(lines, args) }
}

// TestModeChoiceLog: a conflict is logged naming both sources and both
// modes; a fallback says what was asked and what runs.
func TestModeChoiceLog(t *testing.T) {
	lines, write := logLines()
	c, err := ChooseMode(ModeInputs{Berth: ModeIPVS, ConfigMap: ModeIPTables, Available: both})
	if err != nil {
		t.Fatal(err)
	}
	c.Log(funcr.New(write, funcr.Options{}))
	if len(*lines) != 2 {
		t.Fatalf("logged %q, want a conflict and the choice", *lines)
	}
	for _, want := range []string{`"mode"="ipvs"`, `"source"="` + string(SourceBerth), `"ignoredMode"="iptables"`, `"ignoredSource"="` + string(SourceConfigMap), "Conflicting"} {
		if !strings.Contains((*lines)[0], want) {
			t.Errorf("conflict line %q lacks %s", (*lines)[0], want)
		}
	}

	*lines = nil
	c, err = ChooseMode(ModeInputs{ConfigMap: ModeNFTables, Available: both})
	if err != nil {
		t.Fatal(err)
	}
	c.Log(funcr.New(write, funcr.Options{}))
	if len(*lines) != 2 || !strings.Contains((*lines)[0], `"asked"="nftables"`) || !strings.Contains((*lines)[0], `"mode"="iptables"`) {
		t.Errorf("fallback logged %q, want the mode asked, by whom, and the one running", *lines)
	}

	*lines = nil
	c, _ = ChooseMode(ModeInputs{Berth: ModeIPVS, ConfigMap: ModeIPVS, Available: both})
	c.Log(funcr.New(write, funcr.Options{}))
	if len(*lines) != 1 {
		t.Errorf("agreeing sources logged %q, want the choice only", *lines)
	}
}
