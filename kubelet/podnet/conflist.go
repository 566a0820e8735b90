package podnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/berthnode/berth/kubelet/atomicfile"
)

// cniVersion is the CNI spec version of the config list. containerd 1.6
// (libcni 1.1) and the CNI plugins from 1.0 on implement it.
const cniVersion = "1.0.0"

// confParams is what the config list is made of.
type confParams struct {
	bridge   string
	mtu      int
	hairpin  bool
	podCIDRs []netip.Prefix
}

// The config list's JSON, plugin by plugin, as the CNI spec and the
// plugins' documentation name the keys. Loopback is not among the plugins:
// containerd's CRI plugin sets up the pod's lo itself.
type (
	conflist struct {
		// CNIVersion is the spec version of the list and its plugins.
		CNIVersion string `json:"cniVersion"`
		// Name is the network's name; host-local keys its state on it.
		Name string `json:"name"`
		// Plugins run in order on ADD, in reverse on DEL.
		Plugins []any `json:"plugins"`
	}
	bridgePlugin struct {
		// Type is the plugin binary: "bridge".
		Type string `json:"type"`
		// Bridge is the Linux bridge to attach the pods' veths to.
		Bridge string `json:"bridge"`
		// IsGateway gives the bridge the range's gateway address, so the
		// pods' default route leads to the host.
		IsGateway bool `json:"isGateway"`
		// IPMasq stays false: masquerading is the proxy's job.
		IPMasq bool `json:"ipMasq"`
		// HairpinMode sets hairpin on the pod's bridge port.
		HairpinMode bool `json:"hairpinMode"`
		// MTU of the bridge and the veths; 0 (left out) is the default.
		MTU int `json:"mtu,omitempty"`
		// IPAM allocates the pod's addresses.
		IPAM hostLocal `json:"ipam"`
	}
	hostLocal struct {
		// Type is the IPAM plugin binary: "host-local".
		Type string `json:"type"`
		// Ranges holds one range set per family; a pod gets one address
		// from each.
		Ranges [][]ipamRange `json:"ranges"`
		// Routes are the pod's routes: a default route per family.
		Routes []ipamRoute `json:"routes"`
	}
	ipamRange struct {
		// Subnet is a pod CIDR of the node.
		Subnet string `json:"subnet"`
	}
	ipamRoute struct {
		// Dst is the route's destination, via the range's gateway.
		Dst string `json:"dst"`
	}
	portmapPlugin struct {
		// Type is the plugin binary: "portmap".
		Type string `json:"type"`
		// Capabilities asks the runtime for the pod's hostPorts.
		Capabilities map[string]bool `json:"capabilities"`
		// SNAT masquerades hairpin traffic to a hostPort of the same node.
		SNAT bool `json:"snat"`
	}
)

// renderConflist returns the config list for p, as indented JSON.
func renderConflist(p confParams) ([]byte, error) {
	if len(p.podCIDRs) == 0 {
		return nil, errors.New("no podCIDR")
	}
	ipam := hostLocal{Type: "host-local"}
	for _, cidr := range p.podCIDRs {
		ipam.Ranges = append(ipam.Ranges, []ipamRange{{Subnet: cidr.String()}})
		def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if cidr.Addr().Is6() {
			def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		ipam.Routes = append(ipam.Routes, ipamRoute{Dst: def.String()})
	}
	list := conflist{
		CNIVersion: cniVersion,
		Name:       NetworkName,
		Plugins: []any{
			bridgePlugin{
				Type:        "bridge",
				Bridge:      p.bridge,
				IsGateway:   true,
				HairpinMode: p.hairpin,
				MTU:         p.mtu,
				IPAM:        ipam,
			},
			portmapPlugin{
				Type:         "portmap",
				Capabilities: map[string]bool{"portMappings": true},
				SNAT:         true,
			},
		},
	}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding CNI config list: %w", err)
	}
	return append(data, '\n'), nil
}

// writeIfChanged makes dir/name hold data, atomically, and only if it
// holds something else: every write wakes containerd's config watcher. It
// reports whether it wrote. The temporary file's name does not end in
// .conflist, so CNI loaders skip it.
func writeIfChanged(dir, name string, data []byte) (bool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("creating %s: %w", dir, err)
	}
	return atomicfile.WriteIfChanged(filepath.Join(dir, name), data, 0o644)
}

// ConfigList returns the CNI config list berth's pod network writes on a
// node with the given pod CIDRs (bridge DefaultBridgeName, hairpin mode, no
// MTU), for a test bed that runs another node agent on the same network.
func ConfigList(podCIDRs []netip.Prefix) ([]byte, error) {
	return renderConflist(confParams{bridge: DefaultBridgeName, hairpin: true, podCIDRs: podCIDRs})
}
