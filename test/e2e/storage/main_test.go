package storage

import (
	"os"
	"testing"

	"github.com/berthnode/berth/test/testbed"
)

// bed is the test bed all tests of this package share (nil as non-root).
var bed *testbed.Testbed

func TestMain(m *testing.M) {
	os.Exit(testbed.RunTests(m, testbed.Options{Nodes: 1, Setup: testbed.JoinAll, Benchmarks: true}, &bed))
}
