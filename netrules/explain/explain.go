package explain

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/berthnode/berth/netrules/ipvs"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

var (
	// ErrNotProgrammed is returned when the rules hold nothing for the
	// service asked about.
	ErrNotProgrammed = errors.New("nothing is programmed")
	// ErrBadServiceName is returned for a service name that is not
	// "namespace/name" or "namespace/name:port".
	ErrBadServiceName = errors.New(`service must be given as "namespace/name" or "namespace/name:port"`)
)

// Config is where Service reads the rules from.
type Config struct {
	// Family is the IP family of the rules (iptables-save or
	// ip6tables-save).
	Family proxy.Family
	// Exec runs iptables-save; nil runs it from PATH.
	Exec xtables.Exec
	// OpenIPVS opens the kernel's IPVS table, for IPVS mode; nil is
	// ipvs.NewHandle.
	OpenIPVS func() (ipvs.Handle, error)
}

// Service explains what berth's proxy programmed on this node for service
// ("namespace/name" or "namespace/name:port"), in whichever mode it runs:
// it reads the nat and filter tables with iptables-save and, when they hold
// the IPVS mode's chains, the kernel's IPVS table. A bad service name is
// refused (ErrBadServiceName) before anything is read; the errors of the
// explanation itself name the family ("IPv4: ...").
func Service(ctx context.Context, cfg Config, service string) (interface{ Write(io.Writer) error }, error) {
	if _, _, err := parseService(service); err != nil {
		return nil, err
	}
	if cfg.Exec == nil {
		cfg.Exec = xtables.OSExec{}
	}
	save, err := Save(ctx, cfg.Exec, cfg.Family)
	if err != nil {
		return nil, err
	}
	e, err := explainSaved(cfg, save, service)
	if err != nil {
		return nil, fmt.Errorf("IPv%d: %w", cfg.Family, err)
	}
	return e, nil
}

// explainSaved explains service from save, in the mode save shows.
func explainSaved(cfg Config, save map[xtables.Table][]byte, service string) (interface{ Write(io.Writer) error }, error) {
	if !bytes.Contains(save[xtables.TableNAT], []byte(":"+ipvs.ChainPrefix)) {
		return Explain(save, service)
	}
	// berth runs in IPVS mode: the virtual servers hold the balancing.
	open := cfg.OpenIPVS
	if open == nil {
		open = func() (ipvs.Handle, error) { return ipvs.NewHandle() }
	}
	h, err := open()
	if err != nil {
		return nil, err
	}
	return ExplainIPVS(h, save, service)
}

// Save reads the nat and filter tables of the family with iptables-save
// (ip6tables-save).
func Save(ctx context.Context, ex xtables.Exec, family proxy.Family) (map[xtables.Table][]byte, error) {
	bin := "iptables-save"
	if family == proxy.IPv6 {
		bin = "ip6tables-save"
	}
	save := map[xtables.Table][]byte{}
	for _, t := range []xtables.Table{xtables.TableNAT, xtables.TableFilter} {
		out, err := ex.Run(ctx, nil, bin, "-t", string(t))
		if err != nil {
			return nil, fmt.Errorf("reading the %s table: %w", t, err)
		}
		save[t] = out
	}
	return save, nil
}

// parseService checks a service name, "namespace/name" or
// "namespace/name:port", and returns its namespace and whether it names a
// port.
func parseService(service string) (ns string, onePort bool, err error) {
	ns, name, ok := strings.Cut(service, "/")
	if !ok || ns == "" || name == "" || strings.ContainsAny(name, "/ ") || strings.HasPrefix(name, ":") || strings.HasSuffix(name, ":") {
		return "", false, fmt.Errorf("%w: %q", ErrBadServiceName, service)
	}
	return ns, strings.Contains(name, ":"), nil
}

// portID identifies a service port: its comment name and protocol.
type portID struct {
	name  string
	proto proxy.Protocol
}

// sortedPorts returns the keys of ports by name, then protocol.
func sortedPorts[T any](ports map[portID]T) []portID {
	return slices.SortedFunc(maps.Keys(ports), func(a, b portID) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(string(a.proto), string(b.proto)))
	})
}

// savedRule is one "-A" line of iptables-save output.
type savedRule struct {
	// opts are the rule's options (see xtables.Options).
	opts map[string]string
	// text is the rule as saved, after "-A CHAIN ".
	text string
}

func (r savedRule) has(opt string) bool { _, ok := r.opts[opt]; return ok }

// savedTable is a table's chains of one backend and their rules, in order.
type savedTable struct {
	chains map[string]bool
	rules  map[string][]savedRule
}

func newSavedTable() *savedTable {
	return &savedTable{chains: map[string]bool{}, rules: map[string][]savedRule{}}
}

// readSaved reads the chains whose names start with prefix, and their
// rules, from iptables-save output by table; the rest is skipped.
func readSaved(save map[xtables.Table][]byte, prefix string) map[xtables.Table]*savedTable {
	rs := xtables.Ruleset{}
	for t, data := range save {
		rs.Read(t, data)
	}
	out := map[xtables.Table]*savedTable{}
	for t, tr := range rs {
		st := newSavedTable()
		for _, c := range tr.Chains {
			if strings.HasPrefix(c, prefix) {
				st.chains[c] = true
			}
		}
		for c, rules := range tr.Rules {
			if !strings.HasPrefix(c, prefix) {
				continue
			}
			for _, text := range rules {
				args, _ := xtables.Split(text)
				st.rules[c] = append(st.rules[c], savedRule{opts: xtables.Options(args), text: text})
			}
		}
		out[t] = st
	}
	return out
}

// addr reads the address of an "-s" or "-d" value ("ip/bits").
func addr(v string) netip.Addr {
	p, _ := netip.ParsePrefix(v)
	return p.Addr()
}

// portOf reads a port number.
func portOf(v string) uint16 {
	n, _ := strconv.ParseUint(v, 10, 16)
	return uint16(n)
}

// writePorts writes the n ports of an explanation, a blank line between
// two, each with writePort, which tells whether the port needs the footer;
// then the footer, once, if one did.
func writePorts(w io.Writer, n int, writePort func(b *strings.Builder, i int) bool, footer string) error {
	var b strings.Builder
	needFooter := false
	for i := range n {
		if i > 0 {
			b.WriteByte('\n')
		}
		needFooter = writePort(&b, i) || needFooter
	}
	if needFooter {
		b.WriteString(footer)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// text returns what e's Write prints.
func text(e interface{ Write(io.Writer) error }) string {
	var b strings.Builder
	_ = e.Write(&b)
	return b.String()
}
