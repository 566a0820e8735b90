package testing

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/berthnode/berth/netrules/xtables"
)

// errSyntax is a rule or line the fake cannot parse: what iptables-restore
// would reject, or what the fake does not model (it says which).
var errSyntax = errors.New("bad rule")

// matcher tells whether a packet matches one part of a rule.
type matcher func(p *packetState) bool

// parsedRule is one parsed rule: its text and what it does.
type parsedRule struct {
	// Text is the rule as iptables-save prints it, without "-A CHAIN".
	Text string
	// Target is the -j target ("" for none).
	Target string

	args     []string
	matchers []matcher
	action   action
}

// ruleParser walks a rule's arguments.
type ruleParser struct {
	args   []string
	i      int
	family int
	table  string
	proto  string
	rule   *parsedRule
	// counters of the statistic matches are made per rule, so the fake
	// keeps them with the rule like the kernel keeps them with the match.
	fake *Fake
}

// parseRule parses the arguments after "-A CHAIN".
func parseRule(f *Fake, family int, table string, args []string) (*parsedRule, error) {
	r := &parsedRule{args: args, Text: xtables.JoinRule(args)}
	p := &ruleParser{args: args, family: family, table: table, rule: r, fake: f}
	for p.i < len(args) {
		if err := p.next(); err != nil {
			return nil, fmt.Errorf("%w in %q", err, r.Text)
		}
	}
	return r, nil
}

func (p *ruleParser) peek() string {
	if p.i < len(p.args) {
		return p.args[p.i]
	}
	return ""
}

func (p *ruleParser) take() (string, error) {
	if p.i >= len(p.args) {
		return "", fmt.Errorf("%w: missing argument", errSyntax)
	}
	p.i++
	return p.args[p.i-1], nil
}

// negated consumes a "!" and tells whether there was one.
func (p *ruleParser) negated() bool {
	if p.peek() == "!" {
		p.i++
		return true
	}
	return false
}

func (p *ruleParser) add(neg bool, m matcher) {
	if neg {
		p.rule.matchers = append(p.rule.matchers, func(s *packetState) bool { return !m(s) })
		return
	}
	p.rule.matchers = append(p.rule.matchers, m)
}

func (p *ruleParser) next() error {
	neg := p.negated()
	opt, err := p.take()
	if err != nil {
		return err
	}
	switch opt {
	case "-s", "--source", "-d", "--destination":
		return p.address(neg, opt == "-s" || opt == "--source")
	case "-p", "--protocol":
		v, err := p.take()
		if err != nil {
			return err
		}
		p.proto = v
		p.add(neg, func(s *packetState) bool { return v == "all" || s.proto == v })
		return nil
	case "-m", "--match":
		if neg {
			return fmt.Errorf("%w: ! before -m", errSyntax)
		}
		mod, err := p.take()
		if err != nil {
			return err
		}
		return p.module(mod)
	case "--dport", "--destination-port", "--sport", "--source-port":
		// iptables loads the protocol's match implicitly.
		p.i--
		if neg {
			p.i--
		}
		return p.module(p.proto)
	case "-j", "--jump":
		if neg {
			return fmt.Errorf("%w: ! before -j", errSyntax)
		}
		return p.target()
	}
	return fmt.Errorf("%w: option %q is not modelled by the fake", errSyntax, opt)
}

func (p *ruleParser) address(neg, src bool) error {
	v, err := p.take()
	if err != nil {
		return err
	}
	pfx, err := parsePrefix(v)
	if err != nil {
		return err
	}
	if familyOf(pfx.Addr()) != p.family {
		return fmt.Errorf("%w: address %s of the wrong family", errSyntax, v)
	}
	p.add(neg, func(s *packetState) bool {
		if src {
			return pfx.Contains(s.src)
		}
		return pfx.Contains(s.dst)
	})
	return nil
}

// parsePrefix reads "addr" or "addr/bits".
func parsePrefix(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		pfx, err := netip.ParsePrefix(v)
		if err != nil {
			return pfx, fmt.Errorf("%w: %v", errSyntax, err)
		}
		return pfx.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %v", errSyntax, err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// moduleOption tells whether the next arguments ("--x" or "! --x") belong
// to the current module rather than starting the next part of the rule.
func (p *ruleParser) moduleOption(known ...string) (opt string, neg, ok bool) {
	j := p.i
	if j < len(p.args) && p.args[j] == "!" {
		neg, j = true, j+1
	}
	if j >= len(p.args) {
		return "", false, false
	}
	for _, k := range known {
		if p.args[j] == k {
			p.i = j + 1
			return k, neg, true
		}
	}
	return "", false, false
}

// parseUint reads a number in decimal or 0x hex.
func parseUint(v string, bits int) (uint64, error) {
	n, err := strconv.ParseUint(v, 0, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errSyntax, err)
	}
	return n, nil
}
