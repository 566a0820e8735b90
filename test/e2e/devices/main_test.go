package devices

import (
	"os"
	"testing"

	"github.com/berthnode/berth/test/testbed"
)

// bed is the test bed of this package (nil as non-root).
var bed *testbed.Testbed

func TestMain(m *testing.M) {
	os.Exit(testbed.RunTests(m, testbed.Options{Nodes: 1, Setup: testbed.JoinAll}, &bed))
}
