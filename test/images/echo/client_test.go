package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// runArgs runs the program in-process and returns its exit code and output.
func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// closedAddr returns a loopback TCP address that nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestClients(t *testing.T) {
	ts := startServer(t, "pod-x")
	httpAddr := ts.httpLn.Addr().String()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{name: "get", args: []string{"get", "http://" + httpAddr + "/", "--count", "3"}},
		{name: "get without scheme", args: []string{"get", "--count=3", httpAddr}},
		{name: "tcp", args: []string{"tcp", ts.tcpLn.Addr().String(), "--count", "3", "--timeout", "5s"}},
		{name: "udp", args: []string{"udp", ts.udpConn.LocalAddr().String(), "--count", "3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runArgs(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit code %d, stderr: %s", code, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if len(lines) != 3 {
				t.Fatalf("got %d lines, want 3:\n%s", len(lines), stdout)
			}
			clients := map[string]bool{}
			for _, line := range lines {
				name, addr, ok := strings.Cut(line, " ")
				host, _, err := net.SplitHostPort(addr)
				if !ok || err != nil || name != "pod-x" || host != "127.0.0.1" {
					t.Errorf("line %q, want \"pod-x 127.0.0.1:PORT\"", line)
				}
				clients[addr] = true
			}
			if len(clients) != len(lines) {
				t.Errorf("attempts shared a client address, want a new connection each:\n%s", stdout)
			}
		})
	}
}

func TestClientFailures(t *testing.T) {
	ts := startServer(t, "pod-y")
	dead := closedAddr(t)
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "get refused", args: []string{"get", "http://" + dead + "/", "--count", "2"}, wantCode: 1, wantStderr: "2 of 2 attempts"},
		{name: "get non-200", args: []string{"get", ts.httpURL("/exit?code=x")}, wantCode: 1, wantStderr: "400 Bad Request"},
		{name: "tcp refused", args: []string{"tcp", dead}, wantCode: 1, wantStderr: "connection refused"},
		{name: "udp refused", args: []string{"udp", dead, "--timeout", "5s"}, wantCode: 1, wantStderr: "udp " + dead},
		{name: "count too high", args: []string{"tcp", dead, "--count", "10001"}, wantCode: 2, wantStderr: "--count 10001"},
		{name: "count zero", args: []string{"udp", dead, "--count", "0"}, wantCode: 2, wantStderr: "--count 0"},
		{name: "bad timeout", args: []string{"get", dead, "--timeout", "0s"}, wantCode: 2, wantStderr: "--timeout 0s"},
		{name: "no target", args: []string{"get"}, wantCode: 2, wantStderr: "want exactly one target"},
		{name: "two targets", args: []string{"tcp", dead, dead}, wantCode: 2, wantStderr: "want exactly one target"},
		{name: "unknown flag", args: []string{"tcp", dead, "--bogus"}, wantCode: 2, wantStderr: "bogus"},
		{name: "unknown command", args: []string{"ping"}, wantCode: 2, wantStderr: `unknown command "ping"`},
		{name: "serve positional", args: []string{"serve", "x"}, wantCode: 2, wantStderr: "unexpected arguments"},
		{name: "serve bad address", args: []string{"serve", "--http", "bad:addr:1"}, wantCode: 1, wantStderr: "listen http"},
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: usage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runArgs(t, tc.args...)
			if diff := cmp.Diff([]any{tc.wantCode, tc.wantStdout}, []any{code, stdout}); diff != "" {
				t.Errorf("run(%q) (-want +got):\n%s\nstderr: %s", tc.args, diff, stderr)
			}
			if !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.wantStderr)
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		wantPos   []string
		wantCount int
	}{
		{args: []string{"a"}, wantPos: []string{"a"}, wantCount: 1},
		{args: []string{"--count", "3", "a"}, wantPos: []string{"a"}, wantCount: 3},
		{args: []string{"a", "--count", "3"}, wantPos: []string{"a"}, wantCount: 3},
		{args: []string{"a", "--count=4", "b"}, wantPos: []string{"a", "b"}, wantCount: 4},
		{args: nil, wantPos: nil, wantCount: 1},
	} {
		flags := newFlagSet("test", &bytes.Buffer{})
		count := flags.Int("count", 1, "")
		pos, err := parseInterspersed(flags, tc.args)
		if err != nil {
			t.Errorf("parseInterspersed(%q): %v", tc.args, err)
			continue
		}
		if diff := cmp.Diff([]any{tc.wantPos, tc.wantCount}, []any{pos, *count}); diff != "" {
			t.Errorf("parseInterspersed(%q) (-want +got):\n%s", tc.args, diff)
		}
	}
}
