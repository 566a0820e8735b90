package pods

import "testing"

// TestRuntimeWatch: the relist wakes a worker only for a runtime state it
// has not observed, and a change found during a sync waits for the sync's
// end, which needs no second sync when it ended with an observation.
func TestRuntimeWatch(t *testing.T) {
	var r runtimeWatch
	if !r.relisted(true, "a") {
		t.Error("a change no sync observed does not wake the worker")
	}
	if r.relisted(false, "a") {
		t.Error("no change wakes the worker")
	}
	r.beginSync()
	if r.relisted(true, "b") {
		t.Error("a change found during a sync wakes the worker at once")
	}
	r.observe("c")
	if r.endSync() {
		t.Error("a sync that ended with an observation is followed by another")
	}
	if r.relisted(true, "c") {
		t.Error("the state the sync observed (its own sandbox) wakes the worker")
	}
	if !r.relisted(false, "d") {
		t.Error("a state the sync did not observe does not wake the worker")
	}
	r.beginSync()
	r.relisted(true, "e")
	if !r.endSync() {
		t.Error("a change found during a sync that observed nothing is lost")
	}
}
