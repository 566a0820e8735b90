package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"

	"github.com/berthnode/berth/netrules/explain"
	"github.com/berthnode/berth/netrules/iptables"
	iptablestesting "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// syncedFake is a fake iptables holding the example state of both
// families, as berth's iptables backend programs it.
func syncedFake(t *testing.T) *iptablestesting.Fake {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	fake := iptablestesting.NewFake(iptablestesting.FakeConfig{})
	for _, f := range []proxy.Family{proxy.IPv4, proxy.IPv6} {
		b, err := iptables.New(iptables.Config{Family: f, MasqueradeBit: iptables.DefaultMasqueradeBit, Exec: fake, Hooks: fake.Hooks(f)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Sync(ctx, proxytest.ExampleState(f), nil); err != nil {
			t.Fatalf("Sync: %v", err)
		}
	}
	return fake
}

// explained is what the command must print for the service: the
// explanation of the fake's rules (netrules/explain tests its text).
func explained(t *testing.T, fake *iptablestesting.Fake, f proxy.Family, service string) string {
	t.Helper()
	e, err := explain.Explain(map[xtables.Table][]byte{
		xtables.TableNAT:    fake.Save(f, xtables.TableNAT),
		xtables.TableFilter: fake.Save(f, xtables.TableFilter),
	}, service)
	if err != nil {
		t.Fatalf("Explain: %v", err)
	}
	return e.String()
}

// failingExec fails every command as a missing binary does.
type failingExec struct{}

func (failingExec) Run(_ context.Context, _ []byte, name string, _ ...string) ([]byte, error) {
	return nil, &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// recordingExec records the commands it passes on.
type recordingExec struct {
	xtables.Exec
	commands []string
}

func (r *recordingExec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	r.commands = append(r.commands, strings.Join(append([]string{name}, args...), " "))
	return r.Exec.Run(ctx, stdin, name, args...)
}

func TestRulesExplain(t *testing.T) {
	fake := syncedFake(t)
	tests := []struct {
		name       string
		args       []string
		exec       xtables.Exec
		wantCode   int
		wantStdout string
		wantStderr string
		// wantCommands are the iptables commands run; nil: not checked.
		wantCommands []string
	}{
		{
			name:         "service",
			args:         []string{"explain", "default/web"},
			wantCode:     exitOK,
			wantStdout:   explained(t, fake, proxy.IPv4, "default/web"),
			wantCommands: []string{"iptables-save -t nat", "iptables-save -t filter"},
		},
		{
			name:         "IPv6, flag after the service",
			args:         []string{"explain", "default/local-lb", "--family", "6"},
			wantCode:     exitOK,
			wantStdout:   explained(t, fake, proxy.IPv6, "default/local-lb"),
			wantCommands: []string{"ip6tables-save -t nat", "ip6tables-save -t filter"},
		},
		{
			name:       "one port",
			args:       []string{"explain", "--family=4", "kube-system/kube-dns:dns"},
			wantCode:   exitOK,
			wantStdout: explained(t, fake, proxy.IPv4, "kube-system/kube-dns:dns"),
		},
		{
			name:     "service without rules",
			args:     []string{"explain", "default/nope"},
			wantCode: exitFailure,
			wantStderr: "berth: IPv4: nothing is programmed for default/nope: no berth rule in nat or filter is for it " +
				"(a service gets rules once it has a cluster IP; a headless one never does); " +
				"services of namespace default that have some: empty, itp-local, lb, local-lb, local-none, sctp, sticky, web\n",
		},
		{
			name:       "iptables-save missing",
			args:       []string{"explain", "default/web"},
			exec:       failingExec{},
			wantCode:   exitFailure,
			wantStderr: "berth: reading the nat table: exec: \"iptables-save\": executable file not found in $PATH\n",
		},
		{
			name:         "bad service name",
			args:         []string{"explain", "web"},
			wantCode:     exitUsage,
			wantStderr:   "berth rules explain: service must be given as \"namespace/name\" or \"namespace/name:port\": \"web\"\nRun 'berth rules explain -h' for usage.\n",
			wantCommands: []string{},
		},
		{
			name:       "no service",
			args:       []string{"explain", "--family", "6"},
			wantCode:   exitUsage,
			wantStderr: "berth rules explain: give one service, as NAMESPACE/SERVICE or NAMESPACE/SERVICE:PORT\nRun 'berth rules explain -h' for usage.\n",
		},
		{
			name:       "two services",
			args:       []string{"explain", "default/web", "default/lb"},
			wantCode:   exitUsage,
			wantStderr: "berth rules explain: give one service, as NAMESPACE/SERVICE or NAMESPACE/SERVICE:PORT\nRun 'berth rules explain -h' for usage.\n",
		},
		{
			name:       "bad family",
			args:       []string{"explain", "default/web", "--family", "5"},
			wantCode:   exitUsage,
			wantStderr: "berth rules explain: --family is 4 or 6, not 5\nRun 'berth rules explain -h' for usage.\n",
		},
		{
			name:       "unknown flag",
			args:       []string{"explain", "--table", "nat", "default/web"},
			wantCode:   exitUsage,
			wantStderr: "berth rules explain: flag provided but not defined: -table\nRun 'berth rules explain -h' for usage.\n",
		},
		{
			name:       "no subcommand",
			args:       nil,
			wantCode:   exitUsage,
			wantStderr: "berth rules: the only subcommand is explain\nRun 'berth rules -h' for usage.\n",
		},
		{
			name:       "help",
			args:       []string{"--help"},
			wantCode:   exitOK,
			wantStdout: rulesSynopsis,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			rec := &recordingExec{Exec: fake, commands: []string{}}
			if tt.exec != nil {
				rec.Exec = tt.exec
			}
			var stdout, stderr bytes.Buffer
			code := rulesExplain(ctx, rec, tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("rulesExplain(%q) = %d, want %d", tt.args, code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantStdout, stdout.String()); diff != "" {
				t.Errorf("rulesExplain(%q) stdout (-want +got):\n%s", tt.args, diff)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr.String()); diff != "" {
				t.Errorf("rulesExplain(%q) stderr (-want +got):\n%s", tt.args, diff)
			}
			if tt.wantCommands != nil {
				if diff := cmp.Diff(tt.wantCommands, rec.commands); diff != "" {
					t.Errorf("rulesExplain(%q) commands (-want +got):\n%s", tt.args, diff)
				}
			}
		})
	}
}

// TestRulesWiring runs "berth rules" through run: the usage errors need no
// iptables, and "-h" lists the flags.
func TestRulesWiring(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"rules", "explain"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("berth rules explain = %d, want %d (stderr %q)", code, exitUsage, stderr.String())
	}
	stdout.Reset()
	if code := run(t.Context(), []string{"rules", "explain", "-h"}, &stdout, &stderr); code != exitOK {
		t.Errorf("berth rules explain -h = %d, want %d", code, exitOK)
	}
	if got := stdout.String(); !strings.HasPrefix(got, rulesSynopsis) || !strings.Contains(got, "-family family") {
		t.Errorf("berth rules explain -h printed:\n%s", got)
	}
	if !strings.Contains(usage, "rules explain NAMESPACE/SERVICE") {
		t.Error("the usage text does not list berth rules")
	}
}
