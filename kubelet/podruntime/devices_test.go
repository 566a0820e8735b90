package podruntime

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestAddDevices(t *testing.T) {
	cfg := &runtimeapi.ContainerConfig{
		Mounts:      []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/vol/data"}},
		Envs:        []*runtimeapi.KeyValue{{Key: "MODE", Value: []byte("spec")}},
		Annotations: map[string]string{annotationHash: "abc"},
	}
	addDevices(cfg, ContainerDevices{
		Devices:     []*runtimeapi.Device{{ContainerPath: "/dev/gpu0", HostPath: "/dev/nvidia0", Permissions: "rw"}},
		Mounts:      []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/plugin/data"}, {ContainerPath: "/tmp/Dev-1", HostPath: "/tmp/Dev-1"}},
		Envs:        []*runtimeapi.KeyValue{{Key: "MODE", Value: []byte("device")}, {Key: "GPU", Value: []byte("0")}},
		Annotations: map[string]string{annotationHash: "device's", "gpu.example.com/id": "0"},
		CDIDevices:  []*runtimeapi.CDIDevice{{Name: "example.com/gpu=0"}},
	})
	want := &runtimeapi.ContainerConfig{
		Devices: []*runtimeapi.Device{{ContainerPath: "/dev/gpu0", HostPath: "/dev/nvidia0", Permissions: "rw"}},
		// The volume keeps its path; the device's other mount is added.
		Mounts: []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/vol/data"}, {ContainerPath: "/tmp/Dev-1", HostPath: "/tmp/Dev-1"}},
		// The device's env comes first: the spec's, later, wins.
		Envs: []*runtimeapi.KeyValue{
			{Key: "MODE", Value: []byte("device")}, {Key: "GPU", Value: []byte("0")}, {Key: "MODE", Value: []byte("spec")},
		},
		Annotations: map[string]string{annotationHash: "abc", "gpu.example.com/id": "0"},
		CDIDevices:  []*runtimeapi.CDIDevice{{Name: "example.com/gpu=0"}},
	}
	if diff := cmp.Diff(want, cfg, protocmp.Transform()); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}
