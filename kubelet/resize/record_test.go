package resize

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
)

func TestAllocateKeepsWhatRunningContainersRunWith(t *testing.T) {
	small, big := req("100m", "64Mi"), req("200m", "128Mi")
	pod := podWith(ctr("a", small), ctr("b", small))
	rec := NewRecord(pod)
	// a runs, b does not: b will start with what is allocated then.
	rec.Allocate(map[string]v1.ResourceRequirements{"a": big, "b": big}, map[string]string{"a": "id-a"})
	if got := AmountsOf(rec.Current("a", "id-a")); got != AmountsOf(small) {
		t.Errorf("a runs with %+v, want its old allocation", got)
	}
	if got := AmountsOf(rec.Current("b", "id-b")); got != AmountsOf(big) {
		t.Errorf("b starts with %+v, want the new allocation", got)
	}
	// A second resize before the first is actuated keeps what a runs with.
	rec.Allocate(map[string]v1.ResourceRequirements{"a": req("300m", "64Mi"), "b": big}, map[string]string{"a": "id-a"})
	if got := AmountsOf(rec.Current("a", "id-a")); got != AmountsOf(small) {
		t.Errorf("a runs with %+v after a second resize, want the first allocation", got)
	}
	// a restarted: its new instance has the allocated resources.
	if !rec.Prune(map[string]string{"a": "id-a2"}) || len(rec.Actuated) != 0 {
		t.Errorf("record of a stopped instance kept: %+v", rec.Actuated)
	}
}

func TestStoreRoundTrip(t *testing.T) {
	s := Store{Root: t.TempDir()}
	if rec, err := s.Load("uid"); rec != nil || err != nil {
		t.Fatalf("load of a missing record: %v, %v", rec, err)
	}
	rec := NewRecord(podWith(ctr("a", lim(req("100m", "64Mi"), "", "128Mi"))))
	rec.SetActuated("a", "id", req("50m", ""))
	if err := s.Save("uid", rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("uid")
	if err != nil {
		t.Fatal(err)
	}
	if !equalRequirements(got.Allocated["a"], rec.Allocated["a"]) || !equalRequirements(got.Actuated["a"].Resources, rec.Actuated["a"].Resources) || got.Actuated["a"].ContainerID != "id" {
		t.Errorf("loaded %+v, saved %+v", got, rec)
	}
	s.Remove("uid")
	if _, err := os.Stat(filepath.Join(s.Root, "pods", "uid", FileName)); !os.IsNotExist(err) {
		t.Errorf("record still there after Remove: %v", err)
	}
}

func TestStoreRejectsBrokenRecord(t *testing.T) {
	s := Store{Root: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(s.Root, "pods", "uid"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Root, "pods", "uid", FileName), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("uid"); err == nil {
		t.Error("a broken record loaded without error")
	}
}

func TestMix(t *testing.T) {
	from := lim(req("100m", "64Mi"), "200m", "")
	to := lim(req("300m", ""), "", "128Mi")
	got := Mix(from, to, v1.ResourceMemory)
	want := lim(req("100m", ""), "200m", "128Mi")
	if !equalRequirements(got, want) {
		t.Errorf("Mix memory: %v", cmp.Diff(want, got))
	}
	if !equalRequirements(from, lim(req("100m", "64Mi"), "200m", "")) {
		t.Error("Mix changed its input")
	}
}
