package iptables_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"k8s.io/klog/v2/ktesting"

	"github.com/berthnode/berth/netrules/iptables"
	ipt "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// recordingExec passes commands to the fake and records them; failRestore
// makes the next restore fail as iptables-restore would.
type recordingExec struct {
	fake        *ipt.Fake
	commands    []string
	failRestore string
}

func (e *recordingExec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	e.commands = append(e.commands, strings.Join(append([]string{name}, args...), " "))
	if strings.HasSuffix(name, "-restore") && e.failRestore != "" {
		stderr := e.failRestore
		e.failRestore = ""
		return nil, &xtables.ExitError{Command: name, Code: 1, Stderr: stderr}
	}
	return e.fake.Run(ctx, stdin, name, args...)
}

func newRecording(t *testing.T, f proxy.Family, legacy bool) (*iptables.Backend, *recordingExec) {
	t.Helper()
	fake := ipt.NewFake(ipt.FakeConfig{Legacy: legacy})
	rec := &recordingExec{fake: fake}
	b, err := iptables.New(iptables.Config{Family: f, MasqueradeBit: 14, Exec: rec, Hooks: fake.Hooks(f)})
	if err != nil {
		t.Fatal(err)
	}
	return b, rec
}

func TestBackendBinaries(t *testing.T) {
	for _, tc := range []struct {
		family proxy.Family
		legacy bool
		want   []string
	}{
		{proxy.IPv4, false, []string{"iptables --version", "iptables-nft-save -t filter", "iptables-nft-save -t nat",
			"iptables-nft-restore --noflush --wait", "iptables-nft-restore --noflush --wait"}},
		{proxy.IPv6, true, []string{"ip6tables --version", "ip6tables-legacy-save -t filter", "ip6tables-legacy-save -t nat",
			"ip6tables-legacy-restore --noflush --wait", "ip6tables-legacy-restore --noflush --wait"}},
	} {
		_, ctx := ktesting.NewTestContext(t)
		b, rec := newRecording(t, tc.family, tc.legacy)
		if _, err := b.Sync(ctx, proxytest.ExampleState(tc.family), nil); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		if got := strings.Join(rec.commands, "\n"); got != strings.Join(tc.want, "\n") {
			t.Errorf("IPv%d legacy=%v ran:\n%s\nwant:\n%s", tc.family, tc.legacy, got, strings.Join(tc.want, "\n"))
		}
		// A partial sync needs no iptables-save: the backend remembers
		// its chains. An endpoint flip touches the nat table only.
		rec.commands = nil
		s := proxytest.ExampleState(tc.family)
		web := proxytest.Service(s, "default/web:http", proxy.TCP)
		web.ClusterEndpoints = web.ClusterEndpoints[1:]
		if _, err := b.Sync(ctx, s, map[string]bool{web.Name.Key(): true}); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		if len(rec.commands) != 1 || !strings.HasSuffix(rec.commands[0], "-restore --noflush --wait") {
			t.Errorf("partial sync ran %q, want one restore", rec.commands)
		}
		// Nothing changed: nothing runs.
		rec.commands = nil
		if _, err := b.Sync(ctx, s, map[string]bool{}); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		if len(rec.commands) != 0 {
			t.Errorf("a sync without changes ran %q", rec.commands)
		}
	}
}

// TestBackendFullSyncs: the backend syncs in full exactly when asked (nil
// changes), and refuses, changing nothing, a partial sync it cannot trust
// its memory for: before its first sync and after a failed one. Which
// syncs are full (the first, after a failure, new node-wide settings) is
// the proxier's decision, tested in proxy (TestSyncFamilyDecidesFullSyncs).
func TestBackendFullSyncs(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	b, rec := newRecording(t, proxy.IPv4, false)
	s := proxytest.ExampleState(proxy.IPv4)
	sync := func(changed map[string]bool) (proxy.SyncResult, error) { return b.Sync(ctx, s, changed) }
	if _, err := sync(map[string]bool{}); !errors.Is(err, proxy.ErrFullSyncRequired) || len(rec.commands) != 0 {
		t.Fatalf("partial first Sync: %v, ran %q; want proxy.ErrFullSyncRequired and nothing run", err, rec.commands)
	}
	if res, err := sync(nil); err != nil || !res.Full {
		t.Fatalf("first Sync = %+v, %v; want a full sync", res, err)
	}
	if res, err := sync(map[string]bool{}); err != nil || res.Full {
		t.Fatalf("second Sync = %+v, %v; want a partial sync", res, err)
	}
	s.MasqueradeAll = true
	if res, err := sync(nil); err != nil || !res.Full {
		t.Errorf("full Sync after a node-wide setting changed = %+v, %v; want a full sync", res, err)
	}
	rec.failRestore = "iptables-restore v1.8.9 (nf_tables): Bad argument\nError occurred at line: 3\n"
	// web loses its endpoints: its cluster IP now rejects, in filter.
	web := proxytest.Service(s, "default/web:http", proxy.TCP)
	web.ClusterEndpoints, web.ExternalEndpoints = nil, nil
	_, err := sync(map[string]bool{web.Name.Key(): true})
	var re *xtables.RestoreError
	if !errors.As(err, &re) || re.Table != xtables.TableFilter || re.Line != 3 || len(re.Context) != 5 {
		t.Fatalf("Sync with a rejected payload: %v, want a xtables.RestoreError of filter at line 3 with 5 lines of context", err)
	}
	rec.commands = nil
	if _, err := sync(map[string]bool{}); !errors.Is(err, proxy.ErrFullSyncRequired) || len(rec.commands) != 0 {
		t.Errorf("partial Sync after a failure: %v, ran %q; want proxy.ErrFullSyncRequired and nothing run", err, rec.commands)
	}
	if res, err := sync(nil); err != nil || !res.Full {
		t.Errorf("full Sync after a failure = %+v, %v; want a full sync", res, err)
	}
	web.ClusterEndpoints = proxytest.Service(proxytest.ExampleState(proxy.IPv4), "default/web:http", proxy.TCP).ClusterEndpoints
	if res, err := sync(map[string]bool{web.Name.Key(): true}); err != nil || res.Full || res.Bytes == 0 || res.Rules == 0 {
		t.Errorf("Sync = %+v, %v; want a partial sync reporting its rules and bytes", res, err)
	}
}

func TestBackendErrors(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	if _, err := iptables.New(iptables.Config{Family: 5}); err == nil {
		t.Error("New with family 5: no error")
	}
	if _, err := iptables.New(iptables.Config{Family: proxy.IPv4, MasqueradeBit: 32}); err == nil {
		t.Error("New with masquerade bit 32: no error")
	}
	b, _ := newRecording(t, proxy.IPv4, false)
	if _, err := b.Sync(ctx, proxytest.ExampleState(proxy.IPv6), nil); !errors.Is(err, iptables.ErrInvalidState) {
		t.Errorf("Sync of an IPv6 state on an IPv4 backend: %v, want ErrInvalidState", err)
	}
	bad := proxytest.ExampleState(proxy.IPv4)
	bad.Services[0].Protocol = "ICMP"
	if _, err := b.Sync(ctx, bad, nil); !errors.Is(err, iptables.ErrInvalidState) {
		t.Errorf("Sync of a bad state: %v, want ErrInvalidState", err)
	}
	// The fake is nf_tables; a backend that finds no iptables at all fails.
	none, err := iptables.New(iptables.Config{Family: proxy.IPv4, Exec: failingExec{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.Sync(ctx, proxytest.ExampleState(proxy.IPv4), nil); err == nil {
		t.Error("Sync without iptables: no error")
	}
}

type failingExec struct{}

func (failingExec) Run(context.Context, []byte, string, ...string) ([]byte, error) {
	return nil, errors.New("no such binary")
}

// streamingExec is a recordingExec that takes inputs as streams, as xtables.OSExec
// does, and counts them.
type streamingExec struct {
	*recordingExec
	streamed int
}

func (e *streamingExec) RunTo(ctx context.Context, stdout io.Writer, name string, args ...string) error {
	out, err := e.Run(ctx, nil, name, args...)
	if err == nil {
		_, err = stdout.Write(out)
	}
	return err
}

func (e *streamingExec) RunFrom(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	e.streamed++
	in, err := io.ReadAll(stdin)
	if err != nil {
		return nil, err
	}
	return e.Run(ctx, in, name, args...)
}

// TestBackendStreamsFullSyncs: with an xtables.Exec that streams, a full sync's nat
// table is streamed into iptables-restore, its size is reported, and a
// rejection still quotes the lines around the one iptables-restore names.
func TestBackendStreamsFullSyncs(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	fake := ipt.NewFake(ipt.FakeConfig{})
	rec := &streamingExec{recordingExec: &recordingExec{fake: fake}}
	b, err := iptables.New(iptables.Config{Family: proxy.IPv4, MasqueradeBit: 14, Exec: rec, Hooks: fake.Hooks(proxy.IPv4)})
	if err != nil {
		t.Fatal(err)
	}
	s := proxytest.ExampleState(proxy.IPv4)
	want, err := iptables.Render(s, iptables.RenderOptions{MasqueradeBit: 14}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Sync(ctx, s, nil)
	if err != nil || !res.Full || res.Bytes != want.Bytes() || rec.streamed != 1 {
		t.Fatalf("Sync = %+v, %v with %d streamed inputs; want a full sync of %d bytes, its nat table streamed", res, err, rec.streamed, want.Bytes())
	}
	failNAT := &failOnStream{streamingExec: rec, stderr: "iptables-restore v1.8.9 (nf_tables): Bad argument\nError occurred at line: 4\n"}
	b, err = iptables.New(iptables.Config{Family: proxy.IPv4, MasqueradeBit: 14, Exec: failNAT, Hooks: fake.Hooks(proxy.IPv4)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Sync(ctx, s, nil)
	var re *xtables.RestoreError
	if !errors.As(err, &re) || re.Table != xtables.TableNAT || re.Line != 4 || len(re.Context) != 5 || !strings.HasPrefix(re.Context[0], "2: :BERTH-") {
		t.Fatalf("Sync with a rejected streamed payload: %v (%+v), want a xtables.RestoreError of nat at line 4 with its 5 lines", err, re)
	}
}

// failOnStream fails the first streamed restore after reading its input.
type failOnStream struct {
	*streamingExec
	stderr string
}

func (e *failOnStream) RunFrom(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	if _, err := io.Copy(io.Discard, stdin); err != nil {
		return nil, err
	}
	return nil, &xtables.ExitError{Command: name, Code: 2, Stderr: e.stderr}
}
