package devices

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// TestBadPluginSockets registers, with berth's registration socket, plugins
// whose socket answers garbage or never answers: each Register fails
// within berth's 10 s call limit with an error naming the resource and the
// socket, and the node stays Ready without the resources.
func TestBadPluginSockets(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	node := bed.Nodes()[0].Name
	const dir = "/var/lib/kubelet/device-plugins"
	serve(t, node, filepath.Join(dir, "garbage.sock"), func(c net.Conn) {
		_, _ = c.Write([]byte("HTTP/1.0 200 OK\r\n\r\nnot a device plugin\n"))
	})
	serve(t, node, filepath.Join(dir, "silent.sock"), func(net.Conn) {})
	for _, tc := range []struct{ resource, sock string }{
		{"example.com/garbage", "garbage.sock"},
		{"example.com/silent", "silent.sock"},
	} {
		start := time.Now()
		err := register(t, node, &pluginapi.RegisterRequest{Version: pluginapi.Version, Endpoint: tc.sock, ResourceName: tc.resource})
		took := time.Since(start)
		want := "device plugin does not answer: resource " + tc.resource + " at " + filepath.Join(dir, tc.sock)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Register %s: got %v, want an error with %q", tc.sock, err, want)
		}
		if took > 15*time.Second {
			t.Errorf("Register %s took %s, want it within berth's 10 s limit", tc.sock, took)
		}
		t.Logf("Register %s refused after %s: %v", tc.sock, took.Round(time.Millisecond), err)
	}
	n, err := client.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []v1.ResourceName{"example.com/garbage", "example.com/silent"} {
		if _, ok := n.Status.Capacity[r]; ok {
			t.Errorf("node capacity has %s from a refused plugin", r)
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady && c.Status != v1.ConditionTrue {
			t.Errorf("node not Ready: %s", c.Message)
		}
	}
}

// serve listens on a Unix socket of node, reached through the host
// folder, and hands each connection to handle, keeping it open.
func serve(t *testing.T, node, path string, handle func(net.Conn)) {
	t.Helper()
	outside, err := bed.HostPath(node, path)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", outside)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handle(c)
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
}

// register calls Register on berth's registration socket of node.
func register(t *testing.T, node string, req *pluginapi.RegisterRequest) error {
	t.Helper()
	sock, err := bed.HostPath(node, "/var/lib/kubelet/device-plugins/kubelet.sock")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, req)
	return err
}
