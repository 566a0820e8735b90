package logs

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	critesting "github.com/berthnode/berth/cri/testing"
)

// currentLog is the current log of default/web's container app: stdout and
// stderr interleaved, a line split in two (with a whole stderr line between
// its parts) and an empty line.
const currentLog = `2024-01-02T15:04:05.000000001Z stdout F line 1
2024-01-02T15:04:06.000000002Z stderr F err 1
2024-01-02T15:04:07.5Z stdout P long 
2024-01-02T15:04:07.6Z stderr F err 2
2024-01-02T15:04:07.7Z stdout F line 2
2024-01-02T15:04:08Z stdout F line 3
2024-01-02T15:04:09Z stderr F 
`

const previousLog = `2024-01-02T14:00:00Z stdout F before the restart
2024-01-02T14:00:01Z stderr F crashed
`

// logFixture is a runtime with pods and their log files:
//   - default/web (uid u2) has container app: instance 0 exited, instance 1
//     running; an older pod default/web (uid u1) is gone but its sandbox and
//     container linger.
//   - default/solo has one running container app.
//   - default/waiting has container app created but never started.
func logFixture(t *testing.T) (*critesting.Runtime, string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rt := critesting.NewRuntime()
	rt.AddSandbox(critesting.Sandbox{ID: "sb-old", Namespace: "default", Name: "web", UID: "u1", CreatedAt: 50})
	rt.AddContainer(critesting.Container{ID: "old", SandboxID: "sb-old", Name: "app", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
		CreatedAt: 51, LogPath: write("stale.log", "2024-01-01T00:00:00Z stdout F stale pod\n")})
	rt.AddSandbox(critesting.Sandbox{ID: "sb-web", Namespace: "default", Name: "web", UID: "u2", CreatedAt: 100})
	rt.AddContainer(critesting.Container{ID: "app-0", SandboxID: "sb-web", Name: "app", State: runtimeapi.ContainerState_CONTAINER_EXITED,
		CreatedAt: 101, LogPath: write("app-0.log", previousLog)})
	rt.AddContainer(critesting.Container{ID: "app-1", SandboxID: "sb-web", Name: "app", Attempt: 1, State: runtimeapi.ContainerState_CONTAINER_RUNNING,
		CreatedAt: 102, LogPath: write("app-1.log", currentLog)})
	// A rotated file is never read by a request that does not follow.
	write("app-1.log.20240102-150000", "2024-01-02T15:00:00Z stdout F rotated away\n")
	rt.AddSandbox(critesting.Sandbox{ID: "sb-solo", Namespace: "default", Name: "solo", UID: "u3", CreatedAt: 100})
	rt.AddContainer(critesting.Container{ID: "solo-0", SandboxID: "sb-solo", Name: "app", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
		CreatedAt: 101, LogPath: write("solo.log", "")})
	rt.AddSandbox(critesting.Sandbox{ID: "sb-wait", Namespace: "default", Name: "waiting", UID: "u4", CreatedAt: 100})
	rt.AddContainer(critesting.Container{ID: "wait-0", SandboxID: "sb-wait", Name: "app", State: runtimeapi.ContainerState_CONTAINER_CREATED,
		CreatedAt: 101, LogPath: filepath.Join(dir, "wait.log")})
	return rt, dir
}

// handlerCase is a request and the answer it should get.
type handlerCase struct {
	name       string
	method     string
	url        string
	wantStatus int
	// want is the whole body of a 200, else a part of the error.
	want string
}

const web = "/containerLogs/default/web/app"

// handlerCases are requests for the logs of logFixture at 15:04:09.
func handlerCases() []handlerCase {
	return []handlerCase{
		{name: "everything", url: web, wantStatus: 200,
			want: "line 1\nerr 1\nerr 2\nlong line 2\nline 3\n\n"},
		{name: "timestamps", url: web + "?timestamps=true", wantStatus: 200,
			want: "2024-01-02T15:04:05.000000001Z line 1\n" +
				"2024-01-02T15:04:06.000000002Z err 1\n" +
				"2024-01-02T15:04:07.600000000Z err 2\n" +
				"2024-01-02T15:04:07.500000000Z long line 2\n" +
				"2024-01-02T15:04:08.000000000Z line 3\n" +
				"2024-01-02T15:04:09.000000000Z \n"},
		{name: "timestamps false", url: web + "?timestamps=false", wantStatus: 200,
			want: "line 1\nerr 1\nerr 2\nlong line 2\nline 3\n\n"},
		{name: "tail counts records", url: web + "?tailLines=3", wantStatus: 200,
			want: "line 2\nline 3\n\n"},
		{name: "tail zero", url: web + "?tailLines=0", wantStatus: 200, want: ""},
		{name: "tail more than there are", url: web + "?tailLines=100", wantStatus: 200,
			want: "line 1\nerr 1\nerr 2\nlong line 2\nline 3\n\n"},
		{name: "legacy tail", url: web + "?tail=2", wantStatus: 200, want: "line 3\n\n"},
		{name: "legacy tail all wins", url: web + "?tail=all&tailLines=1", wantStatus: 200,
			want: "line 1\nerr 1\nerr 2\nlong line 2\nline 3\n\n"},
		{name: "since time", url: web + "?sinceTime=2024-01-02T15:04:07Z", wantStatus: 200,
			want: "err 2\nlong line 2\nline 3\n\n"},
		{name: "since time with offset", url: web + "?sinceTime=2024-01-02T16:04:08%2B01:00", wantStatus: 200,
			want: "line 3\n\n"},
		{name: "since seconds", url: web + "?sinceSeconds=2", wantStatus: 200,
			want: "err 2\nlong line 2\nline 3\n\n"},
		{name: "since the future", url: web + "?sinceTime=2030-01-01T00:00:00Z", wantStatus: 200, want: ""},
		{name: "limit bytes cuts a line", url: web + "?limitBytes=10", wantStatus: 200, want: "line 1\nerr"},
		{name: "limit bytes counts timestamps", url: web + "?limitBytes=35&timestamps=1", wantStatus: 200,
			want: "2024-01-02T15:04:05.000000001Z line"},
		{name: "limit bytes larger than the log", url: web + "?limitBytes=1000", wantStatus: 200,
			want: "line 1\nerr 1\nerr 2\nlong line 2\nline 3\n\n"},
		{name: "stderr only", url: web + "?stream=Stderr", wantStatus: 200, want: "err 1\nerr 2\n\n"},
		{name: "stdout only", url: web + "?stream=Stdout", wantStatus: 200, want: "line 1\nlong line 2\nline 3\n"},
		{name: "all streams", url: web + "?stream=All&tailLines=1", wantStatus: 200, want: "\n"},
		{name: "previous", url: web + "?previous=true", wantStatus: 200, want: "before the restart\ncrashed\n"},
		{name: "previous with options", url: web + "?previous=true&timestamps=true&stream=Stderr", wantStatus: 200,
			want: "2024-01-02T14:00:01.000000000Z crashed\n"},
		{name: "follow an exited container ends", url: web + "?previous=true&follow=true", wantStatus: 200,
			want: "before the restart\ncrashed\n"},
		{name: "empty log", url: "/containerLogs/default/solo/app", wantStatus: 200, want: ""},
		{name: "no previous", url: "/containerLogs/default/solo/app?previous=true", wantStatus: 400,
			want: `previous terminated container "app" in pod "solo" not found`},
		{name: "not started", url: "/containerLogs/default/waiting/app", wantStatus: 400,
			want: `container "app" in pod "waiting" is waiting to start - no logs yet`},
		{name: "unknown container", url: "/containerLogs/default/web/nope", wantStatus: 400,
			want: `container "nope" in pod "web" is waiting to start - no logs yet`},
		{name: "unknown pod", url: "/containerLogs/default/nope/app", wantStatus: 404, want: `pod "nope" does not exist`},
		{name: "other namespace", url: "/containerLogs/kube-system/web/app", wantStatus: 404, want: `pod "web" does not exist`},
		{name: "missing container", url: "/containerLogs/default/web/", wantStatus: 400, want: "missing container name"},
		{name: "missing pod", url: "/containerLogs/default//app", wantStatus: 400, want: "missing podID"},
		{name: "missing namespace", url: "/containerLogs/", wantStatus: 400, want: "missing podNamespace"},
		{name: "too deep", url: "/containerLogs/a/b/c/d", wantStatus: 400, want: "want /containerLogs/"},
		{name: "bad integer", url: web + "?tailLines=x", wantStatus: 400, want: "unable to decode query"},
		{name: "bad time", url: web + "?sinceTime=yesterday", wantStatus: 400, want: "unable to decode query"},
		{name: "negative tail", url: web + "?tailLines=-1", wantStatus: 422, want: "must not be negative"},
		{name: "zero limit", url: web + "?limitBytes=0", wantStatus: 422, want: "must be greater than 0"},
		{name: "both sinces", url: web + "?sinceSeconds=1&sinceTime=2024-01-02T15:04:07Z", wantStatus: 422,
			want: "at most one of sinceTime or sinceSeconds"},
		{name: "zero since seconds", url: web + "?sinceSeconds=0", wantStatus: 422, want: "must be greater than 0"},
		{name: "bad stream", url: web + "?stream=stdout", wantStatus: 422, want: "must be All, Stdout or Stderr"},
		{name: "stream and tail", url: web + "?stream=Stdout&tailLines=1", wantStatus: 422, want: "mutually exclusive"},
		{name: "post", method: http.MethodPost, url: web, wantStatus: 405, want: "method not allowed"},
	}
}

func TestHandlerOptions(t *testing.T) {
	rt, _ := logFixture(t)
	now := time.Date(2024, 1, 2, 15, 4, 9, 0, time.UTC)
	h, err := NewHandler(HandlerConfig{Runtime: rt, Clock: testingclock.NewFakeClock(now)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range handlerCases() {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(cmpOr(tt.method, http.MethodGet), tt.url, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %q", rec.Code, tt.wantStatus, body)
			}
			if tt.wantStatus != http.StatusOK {
				if !strings.Contains(body, tt.want) {
					t.Errorf("body %q, want it to contain %q", body, tt.want)
				}
				return
			}
			if diff := cmp.Diff(tt.want, body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestFollowEndsWhenContainerExits follows a running container: lines
// written while following arrive, and the response ends once the container
// exited and its last lines are out.
func TestFollowEndsWhenContainerExits(t *testing.T) {
	rt, dir := logFixture(t)
	h, err := NewHandler(HandlerConfig{Runtime: rt, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/containerLogs/default/solo/app?follow=true&timestamps=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		b, _ := io.ReadAll(resp.Body)
		lines <- string(b)
	}()
	f, err := os.OpenFile(filepath.Join(dir, "solo.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range []string{
		"2024-01-02T15:04:05Z stdout F first\n",
		"2024-01-02T15:04:06Z stdout P unfinished ",
	} {
		if _, err := f.WriteString(l); err != nil {
			t.Fatal(err)
		}
	}
	// The half-written record waits for its newline; the runtime writes the
	// rest, then the container exits.
	if _, err := f.WriteString("part\n2024-01-02T15:04:07Z stderr F last\n"); err != nil {
		t.Fatal(err)
	}
	rt.SetContainerState("solo-0", runtimeapi.ContainerState_CONTAINER_EXITED)
	select {
	case got := <-lines:
		want := "2024-01-02T15:04:05.000000000Z first\n" +
			"2024-01-02T15:04:07.000000000Z last\n" +
			// The container ended without finishing its split line.
			"2024-01-02T15:04:06.000000000Z unfinished part"
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("followed log (-want +got):\n%s", diff)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("follow did not end after the container exited")
	}
}

func TestFollowEndsWhenClientGoes(t *testing.T) {
	rt, _ := logFixture(t)
	h, err := NewHandler(HandlerConfig{Runtime: rt, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/containerLogs/default/web/app?follow=true&tailLines=1", nil)
	ctx, cancel := context.WithCancel(req.Context())
	req = req.WithContext(ctx)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(rec, req)
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("follow did not end when the client went away")
	}
}
