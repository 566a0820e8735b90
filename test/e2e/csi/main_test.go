package csi

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/berthnode/berth/test/testbed"
)

// bed is the test bed all tests of this package share (nil as non-root).
var bed *testbed.Testbed

// The drivers on the node: one that stages without attaching, one that
// needs its volumes attached (csimock --attach-required), one for tokens.
var (
	plain  = mockDriver{name: "csi-mock.berth.test", zone: "zone-a"}
	attach = mockDriver{name: "csi-attach.berth.test", zone: "zone-b", attachRequired: true}
	// tokens is a driver whose CSIDriver asks for service account tokens.
	tokens = mockDriver{name: "csi-token.berth.test", zone: "zone-c"}
)

func TestMain(m *testing.M) {
	os.Exit(testbed.RunTests(m, testbed.Options{Nodes: 1, Setup: setup, Benchmarks: true}, &bed))
}

// setup joins the node with berth and starts the mock drivers on it.
func setup(ctx context.Context, tb *testbed.Testbed) error {
	if _, err := testbed.PluginBinary("csimock"); err != nil {
		return err
	}
	if err := testbed.JoinAll(ctx, tb); err != nil {
		return err
	}
	node := tb.Nodes()[0].Name
	for _, d := range []mockDriver{plain, attach, tokens} {
		if err := d.start(tb, node); err != nil {
			return fmt.Errorf("start %s: %w", d.name, err)
		}
	}
	return nil
}
