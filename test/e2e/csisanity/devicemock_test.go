package csisanity

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// fakeKubelet answers the device plugin registration as the node agent
// does, and hands the requests to the test.
type fakeKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	requests chan *pluginapi.RegisterRequest
}

// Register hands the request over.
func (k *fakeKubelet) Register(ctx context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	select {
	case k.requests <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &pluginapi.Empty{}, nil
}

// TestDeviceMock registers devicemock with a fake kubelet socket and checks
// its devices, their health and its allocation answer.
func TestDeviceMock(t *testing.T) {
	requireRoot(t)
	bin := plugin(t, "devicemock")
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kubeletSock := filepath.Join(dir, "kubelet.sock")
	l, err := net.Listen("unix", kubeletSock)
	if err != nil {
		t.Fatal(err)
	}
	kubelet := &fakeKubelet{requests: make(chan *pluginapi.RegisterRequest, 1)}
	srv := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(srv, kubelet)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	logPath := filepath.Join(dir, "devicemock.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--resource=example.com/mock", "--devices=Dev-1,Dev-2,Dev-3", "--unhealthy=Dev-3",
		"--socket-dir="+dir, "--kubelet-socket="+kubeletSock, "--device-dir="+filepath.Join(dir, "devices"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("devicemock log:\n%s", out)
		}
	}()

	var req *pluginapi.RegisterRequest
	select {
	case req = <-kubelet.requests:
	case err := <-exited:
		t.Fatalf("devicemock exited before registering: %v", err)
	case <-time.After(startTimeout):
		t.Fatalf("devicemock did not register within %s", startTimeout)
	}
	if req.Version != pluginapi.Version || req.ResourceName != "example.com/mock" || filepath.Base(req.Endpoint) != req.Endpoint {
		t.Errorf("Register = %+v; want version %s, resource example.com/mock, a socket's base name", req, pluginapi.Version)
	}
	sock := filepath.Join(dir, req.Endpoint)
	if !isSocket(sock) {
		t.Fatalf("registered endpoint %s is no socket", sock)
	}

	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	client := pluginapi.NewDevicePluginClient(dial(t, sock))
	stream, err := client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	health := map[string]string{}
	for _, d := range first.Devices {
		health[d.ID] = d.Health
	}
	want := map[string]string{"Dev-1": pluginapi.Healthy, "Dev-2": pluginapi.Healthy, "Dev-3": pluginapi.Unhealthy}
	if len(health) != len(want) || health["Dev-1"] != want["Dev-1"] || health["Dev-2"] != want["Dev-2"] || health["Dev-3"] != want["Dev-3"] {
		t.Errorf("ListAndWatch devices %v, want %v", health, want)
	}

	resp, err := client.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"Dev-1", "Dev-2"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ContainerResponses) != 1 {
		t.Fatalf("Allocate: %d container answers, want 1", len(resp.ContainerResponses))
	}
	c := resp.ContainerResponses[0]
	if c.Envs["DEVICEMOCK_DEVICES"] != "Dev-1,Dev-2" {
		t.Errorf("Allocate envs %v, want DEVICEMOCK_DEVICES=Dev-1,Dev-2", c.Envs)
	}
	var mounted []string
	for _, m := range c.Mounts {
		data, err := os.ReadFile(m.HostPath)
		if err != nil || string(data) != filepath.Base(m.ContainerPath)+"\n" || !m.ReadOnly {
			t.Errorf("Allocate mount %+v: host file %q, %v; want a read-only file holding the device ID", m, data, err)
		}
		mounted = append(mounted, m.ContainerPath)
	}
	if !slices.Equal(mounted, []string{"/var/run/devicemock/Dev-1", "/var/run/devicemock/Dev-2"}) {
		t.Errorf("Allocate mounts %v", mounted)
	}
	if _, err := client.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"Dev-3"}}}}); err == nil {
		t.Errorf("Allocate of the unhealthy Dev-3: got no error")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("devicemock after SIGTERM: %v", err)
		}
	case <-time.After(startTimeout):
		t.Fatalf("devicemock still running %s after SIGTERM", startTimeout)
	}
	if exists(sock) {
		t.Errorf("socket %s left after SIGTERM", sock)
	}
}
