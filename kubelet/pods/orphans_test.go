package pods

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// TestOrphanedVolumesTornDown: a pod directory with volumes, of a pod
// neither the API nor the runtime knows (deleted while berth was down,
// its sandbox gone), gets its volumes torn down, again after a failure;
// a known pod's directory is left alone.
func TestOrphanedVolumesTornDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const orphan = types.UID("0a1b2c3d-orphan")
	for _, p := range []string{
		filepath.Join(h.cfg.RootDir, "pods", string(orphan), "volumes", "kubernetes.io~csi", "pv-1"),
		// Without volumes: nothing to tear down.
		filepath.Join(h.cfg.RootDir, "pods", "no-volumes", "containers"),
	} {
		if err := os.MkdirAll(p, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	h.volumes.failTeardowns = 2
	kept := testPod("kept", ctr("app"))
	h.create(kept)
	h.start()
	h.waitFor("orphan volumes torn down after failures", func() bool { return h.volumes.TornDown(orphan) })
	h.volumes.mu.Lock()
	attempts := h.volumes.attempts
	h.volumes.mu.Unlock()
	if attempts < 3 {
		t.Errorf("%d Teardown attempts, want the two failures retried", attempts)
	}
	h.waitFor("kept running", func() bool { return h.running("kept", "app") })
	if h.volumes.TornDown(kept.UID) || h.volumes.TornDown("no-volumes") {
		t.Error("Teardown of a running pod or of a directory without volumes")
	}
}
