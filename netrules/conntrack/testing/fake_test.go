package testing_test

import (
	"net/netip"
	"testing"

	conntracktesting "github.com/berthnode/berth/netrules/conntrack/testing"
	"github.com/berthnode/berth/proxy"
)

func TestFakeContract(t *testing.T) {
	conntracktesting.RunContract(t, func(t *testing.T, f proxy.Family) conntracktesting.Subject {
		fake := &conntracktesting.Fake{}
		port := uint16(40000)
		return conntracktesting.Subject{
			Conntrack: fake,
			AddUDP: func(t *testing.T, service, endpoint netip.AddrPort) conntracktesting.Flow {
				port++
				fl := conntracktesting.Flow{Client: netip.AddrPortFrom(conntracktesting.Endpoint(f, 1), port), Service: service, Endpoint: endpoint}
				fake.Add(fl)
				return fl
			},
			Flows: func(*testing.T) []conntracktesting.Flow { return fake.Flows() },
		}
	})
}
