package iptables

import (
	"crypto/sha256"
	"encoding/base32"
	"net/netip"
	"strings"

	"github.com/berthnode/berth/netrules/xtables"
)

// ChainPrefix starts the name of every chain berth creates. Of those, the
// ones this backend names (see ownChain) are its own: a sync deletes the
// ones it no longer needs.
const ChainPrefix = "BERTH-"

// The top-level chains. Each is rewritten in full by every sync and reached
// from a built-in chain by exactly one jump rule (see hooks).
const (
	// ChainServices is, in nat, the entry point for every new connection
	// (from PREROUTING and OUTPUT): one rule per service destination; in
	// filter, the REJECT rules of cluster IPs without endpoints.
	ChainServices = "BERTH-SERVICES"
	// ChainNodePorts is, in nat, the jump to each service's external chain
	// by node port; in filter, the ACCEPT rules of health-check node ports.
	ChainNodePorts = "BERTH-NODEPORTS"
	// ChainExternalServices (filter) rejects or drops traffic to external
	// destinations (node ports, external and load-balancer IPs) of services
	// without endpoints for it.
	ChainExternalServices = "BERTH-EXTERNAL-SERVICES"
	// ChainFirewall (filter) drops load-balancer traffic that the nat
	// firewall chain of loadBalancerSourceRanges did not let through.
	ChainFirewall = "BERTH-FIREWALL"
	// ChainForward (filter) accepts forwarded service traffic.
	ChainForward = "BERTH-FORWARD"
	// ChainPostrouting (nat) masquerades the connections marked for it.
	ChainPostrouting = "BERTH-POSTROUTING"
	// ChainMarkMasq (nat) marks a connection for masquerade.
	ChainMarkMasq = "BERTH-MARK-MASQ"
	// ChainMarkOffCluster (nat) marks for masquerade what does not come from
	// a cluster CIDR; used only when there is more than one, since a single
	// CIDR fits in a rule ("! -s CIDR").
	ChainMarkOffCluster = "BERTH-MARK-OFFCLUSTER"
)

// The prefixes of the per-service chains; the rest of a name is a hash and a
// readable suffix (see chainName).
const (
	// PrefixSVC balances over the cluster endpoints (traffic to cluster IPs).
	PrefixSVC = "BERTH-SVC-"
	// PrefixSVX balances over the external endpoints, when they are not
	// the cluster endpoints (traffic policies differ, typically an
	// externalTrafficPolicy: Local service's local endpoints).
	PrefixSVX = "BERTH-SVX-"
	// PrefixEXT handles traffic to the external destinations: masquerade
	// and the externalTrafficPolicy: Local short circuits.
	PrefixEXT = "BERTH-EXT-"
	// PrefixFW lets loadBalancerSourceRanges through to the EXT chain.
	PrefixFW = "BERTH-FW-"
	// PrefixSEP DNATs to one endpoint.
	PrefixSEP = "BERTH-SEP-"
)

// maxChainLen is the longest chain name iptables accepts
// (XT_EXTENSION_MAXNAMELEN minus the terminating NUL).
const maxChainLen = 28

// hashLen is the number of base32 characters of the hash in a chain name:
// 50 bits, so that 10,000 services with 5 endpoints each collide with a
// probability of about one in a million (and the renderer reports it).
const hashLen = 10

// chainName builds prefix + hash(hashInput) + "-" + a readable suffix cut to
// fit 28 characters. The hash alone makes the name unique; the suffix is for
// people reading iptables-save. It allocates only the result: a full render
// names tens of thousands of chains.
func chainName(prefix string, hashInput []byte, suffix string) string {
	var buf [maxChainLen]byte
	sum := sha256.Sum256(hashInput)
	n := copy(buf[:], prefix)
	// The first 7 bytes give the first 10 base32 characters (50 bits).
	var enc [16]byte
	base32.StdEncoding.Encode(enc[:], sum[:7])
	n += copy(buf[n:], enc[:hashLen])
	if r := readable(buf[n+1:], suffix); r > 0 {
		buf[n] = '-'
		n += 1 + r
	}
	return string(buf[:n])
}

// readable copies into dst the characters of s that are safe in a chain
// name, without a leading or trailing separator, and returns how many.
func readable(dst []byte, s string) int {
	n := 0
	for i := 0; i < len(s) && n < len(dst); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '-' || c == '.') && n > 0:
		default:
			continue
		}
		dst[n] = c
		n++
	}
	for n > 0 && (dst[n-1] == '-' || dst[n-1] == '.') {
		n--
	}
	return n
}

// serviceChain names a per-service chain of the given prefix; the suffix is
// the start of the service's name.
func serviceChain(prefix, key, name string) string {
	return chainName(prefix, []byte(key), name)
}

// endpointChain names the SEP chain of one endpoint of a service port; the
// suffix is the end of the endpoint's address (its most telling part).
func endpointChain(key string, ep netip.AddrPort) string {
	var in [128]byte
	b := append(append(in[:0], key...), '|')
	b = ep.AppendTo(b)
	var ip [64]byte
	tail := ep.Addr().AppendTo(ip[:0])
	for i, c := range tail {
		if c == ':' {
			tail[i] = '.'
		}
	}
	if room := maxChainLen - len(PrefixSEP) - hashLen - 1; len(tail) > room {
		tail = tail[len(tail)-room:]
	}
	return chainName(PrefixSEP, b, string(tail))
}

// isServiceChain tells whether a chain is one of the per-service chains.
func isServiceChain(name string) bool {
	for _, p := range []string{PrefixSVC, PrefixSVX, PrefixEXT, PrefixFW, PrefixSEP} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// ChainRef names a chain in a table.
type ChainRef struct {
	// Table is the chain's table.
	Table xtables.Table
	// Chain is the chain's name.
	Chain string
}

// ChainSet is a set of chains: the berth chains that exist in the kernel (as
// iptables-save lists them) or that a payload leaves there.
type ChainSet map[ChainRef]bool

// Has tells whether the set holds the chain.
func (s ChainSet) Has(table xtables.Table, chain string) bool {
	return s[ChainRef{Table: table, Chain: chain}]
}

// Add puts the chain in the set.
func (s ChainSet) Add(table xtables.Table, chain string) {
	s[ChainRef{Table: table, Chain: chain}] = true
}

// ownChain tells whether a chain is this backend's: one of its top-level
// chains, or a per-service chain. A chain of another program, or of berth's
// IPVS mode, is never written or deleted.
func ownChain(name string) bool {
	switch name {
	case ChainServices, ChainNodePorts, ChainExternalServices, ChainFirewall, ChainForward,
		ChainPostrouting, ChainMarkMasq, ChainMarkOffCluster:
		return true
	}
	return isServiceChain(name)
}

// ParseChains adds to s the chains of this backend (see ownChain) that the
// iptables-save output of one or more tables declares.
func (s ChainSet) ParseChains(save []byte) {
	w := xtables.NewChainScanner(s.addOwn)
	w.Write(save)
	w.Close()
}

// addOwn adds the chain to the set when it is this backend's.
func (s ChainSet) addOwn(table xtables.Table, chain string) {
	if ownChain(chain) {
		s.Add(table, chain)
	}
}
