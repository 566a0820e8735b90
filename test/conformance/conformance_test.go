package conformance

import (
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func spec(text string, labels ...string) Spec { return Spec{Text: text, Labels: labels} }

var suite = []Spec{
	spec("[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]", "sig-node", "NodeConformance", "Conformance"),
	spec("[sig-node] Pods should support pod readiness gates [NodeConformance]", "sig-node", "NodeConformance"),
	spec("[sig-network] Services should serve a basic endpoint from pods [Conformance]", "sig-network", "Conformance"),
	spec("[sig-network] Services should be able to switch session affinity for NodePort service [LinuxOnly] [Serial] [Conformance]", "sig-network", "Serial", "Conformance"),
	spec("[sig-storage] EmptyDir volumes should support (root,0644,tmpfs) [LinuxOnly] [NodeConformance] [Conformance]", "sig-storage", "Conformance"),
	spec("[sig-storage] CSIInlineVolumes should support CSIVolumeSource in Pod API [Conformance]", "sig-storage", "Conformance"),
	spec("[sig-storage] Subpath Atomic writer volumes should support subpaths with configmap pod [Conformance]", "sig-storage", "Conformance"),
	spec("[sig-cli] Kubectl logs logs should be able to retrieve and filter logs [Conformance]", "sig-cli", "Conformance"),
	spec("[sig-cli] Kubectl Port forwarding With a server listening on localhost should support forwarding over websockets", "sig-cli"),
	spec("[sig-cli] Kubectl client Simple pod should support exec through an HTTP proxy", "sig-cli"),
	spec("[sig-cli] Kubectl client Simple pod should support exec through kubectl proxy [Slow]", "sig-cli", "Slow"),
	spec("[sig-cli] Kubectl client Kubectl version should check is all data is printed [Conformance]", "sig-cli", "Conformance"),
	spec("[sig-apps] Deployment deployment should support rollover [Conformance]", "sig-apps", "Conformance"),
	spec("[sig-node] ImageVolume should succeed with pod and pull policy of Always [LinuxOnly] [MinimumKubeletVersion:1.35] [Conformance]", "sig-node", "Conformance"),
}

func texts(specs []Spec) []string {
	var out []string
	for _, s := range specs {
		out = append(out, s.Text)
	}
	return out
}

func TestSelect(t *testing.T) {
	want := []string{
		"[sig-cli] Kubectl Port forwarding With a server listening on localhost should support forwarding over websockets",
		"[sig-cli] Kubectl client Simple pod should support exec through an HTTP proxy",
		"[sig-cli] Kubectl logs logs should be able to retrieve and filter logs [Conformance]",
		"[sig-network] Services should be able to switch session affinity for NodePort service [LinuxOnly] [Serial] [Conformance]",
		"[sig-network] Services should serve a basic endpoint from pods [Conformance]",
		"[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]",
		"[sig-storage] EmptyDir volumes should support (root,0644,tmpfs) [LinuxOnly] [NodeConformance] [Conformance]",
		"[sig-storage] Subpath Atomic writer volumes should support subpaths with configmap pod [Conformance]",
	}
	if diff := cmp.Diff(want, texts(Select(suite, Filter{}))); diff != "" {
		t.Errorf("Select (-want +got):\n%s", diff)
	}
	if left := LeftOut(suite); len(left) != 1 || left[suite[len(suite)-1].Text] == "" {
		t.Errorf("LeftOut = %v, want the ImageVolume spec with its reason", left)
	}
	narrowed := Select(suite, Filter{Focus: regexp.MustCompile(`Services`), Skip: regexp.MustCompile(`affinity`)})
	if diff := cmp.Diff([]string{"[sig-network] Services should serve a basic endpoint from pods [Conformance]"}, texts(narrowed)); diff != "" {
		t.Errorf("Select with focus and skip (-want +got):\n%s", diff)
	}
	parallel, serial := Split(Select(suite, Filter{}))
	if len(parallel) != 7 || len(serial) != 1 || !serial[0].Serial() {
		t.Errorf("Split: %d parallel, serial %v; want 7 and the session affinity spec", len(parallel), texts(serial))
	}
}

func TestFocusRegexpMatchesExactlyTheSpecs(t *testing.T) {
	selection := Select(suite, Filter{Focus: regexp.MustCompile(`sig-node|sig-storage`)})
	re := regexp.MustCompile(FocusRegexp(selection))
	for _, s := range suite {
		// Ginkgo matches the suite description, a space, the spec text.
		got := re.MatchString("Kubernetes e2e suite " + s.Text)
		want := false
		for _, sel := range selection {
			want = want || sel.Text == s.Text
		}
		if got != want {
			t.Errorf("focus matches %q: %v, want %v", s.Text, got, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	results, err := ReadJUnit("testdata")
	if err != nil {
		t.Fatal(err)
	}
	selection := Select(suite, Filter{})
	sum := Summarize(selection, results)
	want := map[string]*Counts{
		"sig-cli":     {NotRun: 3},
		"sig-network": {Failed: 1, NotRun: 1},
		"sig-node":    {Passed: 1},
		"sig-storage": {Skipped: 1, NotRun: 1},
	}
	if diff := cmp.Diff(want, sum.BySig); diff != "" {
		t.Errorf("Summarize counts (-want +got):\n%s", diff)
	}
	wantFail := []Result{{
		Text:    "[sig-network] Services should serve a basic endpoint from pods [Conformance]",
		Outcome: Failed,
		Message: "[FAILED] Expected <string>: to equal <string>: DONE (runtime.go:169)",
	}}
	if diff := cmp.Diff(wantFail, sum.Failures); diff != "" {
		t.Errorf("Summarize failures (-want +got):\n%s", diff)
	}
	if sum.Failed() != 1 {
		t.Errorf("Failed() = %d, want 1", sum.Failed())
	}
}

func TestSummarizeKeepsTheRunOverALaterFilteredOut(t *testing.T) {
	text := "[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]"
	sel := []Spec{spec(text, "sig-node", "Conformance")}
	results := []Result{{Text: text, Outcome: Failed, Message: "boom"}, {Text: text, Outcome: Skipped}}
	if got := Summarize(sel, results).BySig["sig-node"]; *got != (Counts{Failed: 1}) {
		t.Errorf("counts = %+v, want one failure: a skip by a later run's filter does not hide it", *got)
	}
}

func TestFailureReason(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{{
		name: "failure",
		text: "[FAILED] Timed out after 300.000s.\nexpected pod to be terminated\nIn [It] at: k8s.io/kubernetes@v1.37.2/test/e2e/common/node/pods.go:440 @ 12/07/26 20:01:00.1\n",
		want: "[FAILED] Timed out after 300.000s. expected pod to be terminated (pods.go:440)",
	}, {
		name: "panic",
		text: "[PANICKED] Test Panicked\nIn [It] at: runtime/panic.go:336 @ 12/07/26 20:04:41.742\n\nruntime error: invalid memory address or nil pointer dereference\n\nFull Stack Trace\n" +
			"  k8s.io/kubernetes/test/e2e/common/node/framework/podresize.VerifyPodContainersStatusResources({0x25843e3b5808, 0x5, 0x0?})\n" +
			"  \tk8s.io/kubernetes@v1.37.2/test/e2e/common/node/framework/podresize/resize.go:231 +0x656\n",
		want: "[PANICKED] Test Panicked: runtime error: invalid memory address or nil pointer dereference (resize.go:231)",
	}} {
		if got := failureReason(tc.text); got != tc.want {
			t.Errorf("%s: failureReason = %q, want %q", tc.name, got, tc.want)
		}
	}
}
