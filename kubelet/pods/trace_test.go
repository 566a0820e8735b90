package pods

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"
)

func TestStartTrace(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tr := &startTrace{clock: clk, seen: clk.Now()}
	step := func(d time.Duration, name string) {
		clk.Step(d)
		tr.mark(name)
	}
	step(10*time.Millisecond, "queued")
	step(100*time.Millisecond, "volumes")
	step(time.Second, "queued") // a retried sync: the later time counts
	step(200*time.Millisecond, "volumes")
	step(300*time.Millisecond, "sandbox")
	clk.Step(50 * time.Millisecond)
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2), ktesting.BufferLogs(true)))
	tr.log(logger)
	got := logger.GetSink().(ktesting.Underlier).GetBuffer().String()
	want := `Observed pod startup total="1.66s" queued="1.11s" volumes="200ms" sandbox="300ms" statusSent="50ms"`
	if !strings.Contains(got, want) {
		t.Errorf("log = %q, want it to contain %q", got, want)
	}
	var none *startTrace
	none.mark("queued") // a pod that started already: nothing to note, no panic
}

func TestResyncAfter(t *testing.T) {
	withVolume := func(src v1.VolumeSource) *v1.Pod {
		return &v1.Pod{Spec: v1.PodSpec{Volumes: []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}, {Name: "data", VolumeSource: src}}}}
	}
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		freq time.Duration
		want time.Duration
	}{
		{"no volumes", &v1.Pod{}, time.Minute, time.Minute},
		{"emptyDir only", withVolume(v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}), time.Minute, time.Minute},
		{"configMap", withVolume(v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{}}), time.Minute, apiDataRefresh},
		{"secret, long syncFrequency", withVolume(v1.VolumeSource{Secret: &v1.SecretVolumeSource{}}), 5 * time.Minute, apiDataRefresh},
		{"projected", withVolume(v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{}}), time.Minute, apiDataRefresh},
		{"downward API, short syncFrequency", withVolume(v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{}}), 10 * time.Second, 10 * time.Second},
	} {
		if got := resyncAfter(tc.pod, tc.freq); got != tc.want {
			t.Errorf("%s: resyncAfter = %v, want %v", tc.name, got, tc.want)
		}
	}
}
