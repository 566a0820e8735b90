package testing

import (
	"path/filepath"
	"testing"
)

func TestFakeMounterContract(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	RunMounterSuite(t, NewFakeMounter(), root)
}
