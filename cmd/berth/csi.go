package main

import (
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/kubelet/csi"
)

// newCSI returns the CSI node side: the handler of CSI drivers for plugin
// registration, the volume manager's CSI volumes, the node status's
// volumesInUse and the CSI volumes' statistics. inUseChanged asks for a
// node status update.
func newCSI(s *nodeSettings, client kubernetes.Interface, recorder record.EventRecorder, clk clock.Clock, inUseChanged func()) (*csi.Manager, error) {
	return csi.New(csi.Config{
		NodeName:     s.nodeName,
		Client:       client,
		RootDir:      s.rootDir,
		Recorder:     recorder,
		Clock:        clk,
		InUseChanged: inUseChanged,
	})
}
