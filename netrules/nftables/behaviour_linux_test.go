package nftables_test

import (
	"context"
	"testing"

	"github.com/berthnode/berth/netrules/nftables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// behaviourSyncer is the backend programming a node namespace's nftables.
type behaviourSyncer struct{ b *nftables.Backend }

func (s behaviourSyncer) Sync(st *proxy.State) error {
	_, err := s.b.Sync(context.Background(), st, nil)
	return err
}

// TestKernelBehaviour plays the proxy's behaviour table (the one every
// backend passes) through the kernel: real connections between
// namespaces, through the table the backend programs.
func TestKernelBehaviour(t *testing.T) {
	proxytest.RunKernel(t, func(t *testing.T, f proxy.Family, node *proxytest.Netns) proxytest.Syncer {
		b, err := nftables.New(nftables.Config{Family: f, MasqueradeBit: nftables.DefaultMasqueradeBit, NetNS: int(node.NS)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		return behaviourSyncer{b}
	}, nil)
}
