package ipvs_test

import (
	"testing"

	"k8s.io/klog/v2/ktesting"

	"github.com/berthnode/berth/netrules/ipvs"
	ipvstesting "github.com/berthnode/berth/netrules/ipvs/testing"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// fakeTracer is the IPVS backend on a fake node: fake iptables, fake IPVS
// table, fake links.
type fakeTracer struct {
	t    *testing.T
	node *ipvstesting.Node
	b    *ipvs.Backend
}

func (tr *fakeTracer) Sync(s *proxy.State) error {
	_, ctx := ktesting.NewTestContext(tr.t)
	_, err := tr.b.Sync(ctx, s, nil)
	return err
}

func (tr *fakeTracer) Trace(p proxytest.Packet) (proxytest.Outcome, error) { return tr.node.Trace(p) }

// TestBehaviour plays the proxy's behaviour table against the IPVS backend
// on a fake node.
func TestBehaviour(t *testing.T) {
	proxytest.Run(t, func(t *testing.T, f proxy.Family) proxytest.Tracer {
		n := newNode(t, f)
		return &fakeTracer{t: t, node: n, b: newBackend(t, n)}
	}, nil)
}
