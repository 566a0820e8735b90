package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// The tests below run client-go's remote command executors, the ones
// kubectl uses, through the Handler to streaming servers built on the same
// libraries as the runtime's. The command they stand in for upper-cases its
// input and exits with code 3.

const exitCode = 3

// exitStatus is the v4/v5 error stream's report of the exit code.
func exitStatus() []byte {
	b, _ := json.Marshal(metav1.Status{
		Status: metav1.StatusFailure,
		Reason: "NonZeroExitCode",
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{
			{Type: "ExitCode", Message: "3"},
		}},
	})
	return b
}

// spdyExecServer serves one exec session over SPDY, remote command
// protocol v4, with stdin, stdout and the error stream.
func spdyExecServer(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := httpstream.Handshake(r, w, []string{"v4.channel.k8s.io"}); err != nil {
			t.Errorf("SPDY handshake: %v", err)
			return
		}
		streams := make(chan httpstream.Stream, 4)
		conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(s httpstream.Stream, _ <-chan struct{}) error {
			streams <- s
			return nil
		})
		if conn == nil {
			t.Errorf("SPDY upgrade failed")
			return
		}
		defer conn.Close()
		byType := map[string]httpstream.Stream{}
		timeout := time.After(testTimeout)
		for len(byType) < 3 {
			select {
			case s := <-streams:
				byType[s.Headers().Get(v1.StreamType)] = s
			case <-timeout:
				t.Errorf("got streams %v, want stdin, stdout and error", byType)
				return
			}
		}
		serveCommand(t, byType[v1.StreamTypeStdin], byType[v1.StreamTypeStdout], byType[v1.StreamTypeError])
	})
}

// wsExecServer serves one exec session over WebSocket, remote command
// protocol v5.
func wsExecServer(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
			"v5.channel.k8s.io": {Binary: true, Channels: []wsstream.ChannelType{
				wsstream.ReadChannel, wsstream.WriteChannel, wsstream.WriteChannel, wsstream.WriteChannel, wsstream.ReadChannel,
			}},
		})
		_, channels, err := conn.Open(w, r)
		if err != nil {
			t.Errorf("WebSocket open: %v", err)
			return
		}
		defer conn.Close()
		serveCommand(t, channels[0], channels[1], channels[3])
	})
}

// serveCommand is the command: stdout is stdin upper-cased, then the exit
// code is reported on errStream.
func serveCommand(t *testing.T, stdin io.Reader, stdout, errStream io.WriteCloser) {
	in, err := io.ReadAll(stdin)
	if err != nil {
		t.Errorf("reading stdin: %v", err)
	}
	if _, err := stdout.Write(bytes.ToUpper(in)); err != nil {
		t.Errorf("writing stdout: %v", err)
	}
	stdout.Close()
	if _, err := errStream.Write(exitStatus()); err != nil {
		t.Errorf("writing the exit status: %v", err)
	}
	errStream.Close()
}

func TestRemoteCommandExecutors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		server   func(*testing.T) http.Handler
		executor func(cfg *restclient.Config, url string) (remotecommand.Executor, error)
	}{{
		name:   "SPDY",
		server: spdyExecServer,
		executor: func(cfg *restclient.Config, u string) (remotecommand.Executor, error) {
			req, err := http.NewRequest(http.MethodPost, u, nil)
			if err != nil {
				return nil, err
			}
			return remotecommand.NewSPDYExecutor(cfg, http.MethodPost, req.URL)
		},
	}, {
		name:   "WebSocket",
		server: wsExecServer,
		executor: func(cfg *restclient.Config, u string) (remotecommand.Executor, error) {
			return remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u)
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, true, false)
			runtimeServer := httptest.NewServer(tc.server(t))
			t.Cleanup(runtimeServer.Close)
			h.rt.StreamBase = runtimeServer.URL

			cfg := &restclient.Config{
				Host:            h.front.URL,
				TLSClientConfig: restclient.TLSClientConfig{CAData: certPEM(t, h.front)},
			}
			e, err := tc.executor(cfg, h.front.URL+"/exec/default/web/app?command=tr&command=a-z&command=A-Z&input=1&output=1")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			var stdout bytes.Buffer
			err = e.StreamWithContext(ctx, remotecommand.StreamOptions{
				Stdin:  bytes.NewBufferString("through the kubelet\n"),
				Stdout: &stdout,
			})
			var exitErr exec.CodeExitError
			if !errors.As(err, &exitErr) || exitErr.Code != exitCode {
				t.Errorf("session ended with %v, want exit code %d", err, exitCode)
			}
			if got, want := stdout.String(), "THROUGH THE KUBELET\n"; got != want {
				t.Errorf("stdout %q, want %q", got, want)
			}
		})
	}
}
