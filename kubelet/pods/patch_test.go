package pods

import (
	"strings"
	"testing"
	"time"

	"github.com/berthnode/berth/kubelet/podruntime/podruntimetest"
	"github.com/berthnode/berth/kubelet/podstatus"
	v1 "k8s.io/api/core/v1"
)

func TestStatusPatch(t *testing.T) {
	pod := podruntimetest.Scheduled(v1.RestartPolicyAlways, nil, podruntimetest.Spec("a"))
	st := podstatus.Build(podstatus.Input{Pod: pod, RT: podruntimetest.State(true, podruntimetest.Running("a")), Now: podruntimetest.T0})
	patch, err := statusPatch(pod, st)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(patch), `"uid":"u"`) || !strings.Contains(string(patch), `"phase":"Running"`) {
		t.Errorf("patch %s lacks the UID or the phase", patch)
	}
	pod.Status = st
	again := podstatus.Build(podstatus.Input{Pod: pod, RT: podruntimetest.State(true, podruntimetest.Running("a")), Now: podruntimetest.T0.Add(time.Hour)})
	patch, err = statusPatch(pod, again)
	if err != nil || patch != nil {
		t.Errorf("patch of an unchanged status: %s, %v", patch, err)
	}
}
