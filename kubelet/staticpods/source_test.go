package staticpods

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	testingclock "k8s.io/utils/clock/testing"
)

func podYAML(name, image string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name +
		"\nspec:\n  containers:\n  - name: app\n    image: " + image + "\n"
}

func names(pods []*v1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return out
}

func TestReadSkipsWhatIsNoGoodManifest(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), podYAML("a", "app:1"))
	writeFile(t, filepath.Join(dir, "b.json"), `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b","namespace":"ns"},"spec":{"containers":[{"name":"app","image":"app:1"}]}}`)
	writeFile(t, filepath.Join(dir, "c.yml"), podYAML("c", "app:1"))
	writeFile(t, filepath.Join(dir, ".hidden.yaml"), podYAML("hidden", "app:1"))
	writeFile(t, filepath.Join(dir, "notes.txt"), podYAML("notes", "app:1"))
	writeFile(t, filepath.Join(dir, "a.yaml~"), podYAML("backup", "app:1"))
	writeFile(t, filepath.Join(dir, "broken.yaml"), "kind: [")
	writeFile(t, filepath.Join(dir, "empty.yaml"), "apiVersion: v1\nkind: Pod\nmetadata:\n  name: empty\n")
	writeFile(t, filepath.Join(dir, "twin.yaml"), podYAML("a", "app:2"))
	if err := os.Mkdir(filepath.Join(dir, "nested.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, _ := newTestSource(t, dir)
	pods, err := s.read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"default/a-node-1", "ns/b-node-1", "default/c-node-1"}
	if diff := cmp.Diff(want, names(pods)); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
	var bad []string
	for path, msg := range s.bad {
		bad = append(bad, filepath.Base(path))
		if filepath.Base(path) == "twin.yaml" && !strings.Contains(msg, "already defined by "+filepath.Join(dir, "a.yaml")) {
			t.Errorf("twin error %q does not name the first file", msg)
		}
	}
	slices.Sort(bad)
	if diff := cmp.Diff([]string{"broken.yaml", "empty.yaml", "nested.yaml", "twin.yaml"}, bad); diff != "" {
		t.Errorf("bad manifests (-want +got):\n%s", diff)
	}
}

// TestRunReportsChanges: the set is reported at start and on every change;
// an unchanged manifest keeps its pod, config.seen included.
func TestRunReportsChanges(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), podYAML("a", "app:1"))
	writeFile(t, filepath.Join(dir, "b.yaml"), podYAML("b", "app:1"))
	s, clk := newTestSource(t, dir)
	updates := make(chan []*v1.Pod, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(p []*v1.Pod) { updates <- p }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	}()
	next := func() []*v1.Pod {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case p := <-updates:
				return p
			case <-deadline:
				t.Fatal("no update")
			case <-time.After(time.Millisecond):
				clk.Step(100 * time.Millisecond)
			}
		}
	}
	first := next()
	if diff := cmp.Diff([]string{"default/a-node-1", "default/b-node-1"}, names(first)); diff != "" {
		t.Fatalf("first update (-want +got):\n%s", diff)
	}

	writeFile(t, filepath.Join(dir, "a.yaml"), podYAML("a", "app:2"))
	changed := next()
	if diff := cmp.Diff([]string{"default/a-node-1", "default/b-node-1"}, names(changed)); diff != "" {
		t.Fatalf("update after a change (-want +got):\n%s", diff)
	}
	if changed[0].UID == first[0].UID {
		t.Error("changed manifest kept its UID")
	}
	if changed[1] != first[1] {
		t.Error("unchanged manifest got a new pod")
	}
	if changed[0].Annotations[AnnotationSeen] == first[0].Annotations[AnnotationSeen] {
		t.Error("changed manifest kept its config.seen time")
	}

	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"default/b-node-1"}, names(next())); diff != "" {
		t.Errorf("update after a removal (-want +got):\n%s", diff)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if got := next(); len(got) != 0 {
		t.Errorf("pods of a missing directory: %v", names(got))
	}
}

func TestRunWithoutDirectory(t *testing.T) {
	s, err := New(Config{NodeName: testNode, Clock: testingclock.NewFakeClock(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan int, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(p []*v1.Pod) { calls <- len(p) }) }()
	if n := <-calls; n != 0 {
		t.Errorf("%d static pods without a directory", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := Config{Dir: "manifests", Period: -time.Second}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"Dir", "NodeName", "Period", "Clock"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
