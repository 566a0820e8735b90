package testing

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// module parses the options of one -m match.
func (p *ruleParser) module(mod string) error {
	switch mod {
	case "comment":
		if _, _, ok := p.moduleOption("--comment"); !ok {
			return fmt.Errorf("%w: -m comment without --comment", errSyntax)
		}
		_, err := p.take()
		return err
	case "tcp", "udp", "sctp":
		if p.proto != mod {
			return fmt.Errorf("%w: -m %s needs -p %s", errSyntax, mod, mod)
		}
		return p.ports()
	case "addrtype":
		return p.addrtype()
	case "statistic":
		return p.statistic()
	case "recent":
		return p.recent()
	case "mark":
		return p.mark()
	case "conntrack":
		return p.conntrack()
	}
	return fmt.Errorf("%w: match %q is not modelled by the fake", errSyntax, mod)
}

func (p *ruleParser) ports() error {
	for {
		opt, neg, ok := p.moduleOption("--dport", "--destination-port", "--sport", "--source-port")
		if !ok {
			return nil
		}
		v, err := p.take()
		if err != nil {
			return err
		}
		lo, hi, err := portRange(v)
		if err != nil {
			return err
		}
		dst := opt == "--dport" || opt == "--destination-port"
		p.add(neg, func(s *packetState) bool {
			port := s.sport
			if dst {
				port = s.dport
			}
			return port >= lo && port <= hi
		})
	}
}

func portRange(v string) (uint16, uint16, error) {
	a, b, isRange := strings.Cut(v, ":")
	lo, err := parseUint(a, 16)
	if err != nil {
		return 0, 0, err
	}
	hi := lo
	if isRange {
		if hi, err = parseUint(b, 16); err != nil {
			return 0, 0, err
		}
	}
	return uint16(lo), uint16(hi), nil
}

func (p *ruleParser) addrtype() error {
	n := 0
	for {
		opt, neg, ok := p.moduleOption("--src-type", "--dst-type")
		if !ok {
			break
		}
		v, err := p.take()
		if err != nil {
			return err
		}
		if v != "LOCAL" {
			return fmt.Errorf("%w: address type %q is not modelled by the fake", errSyntax, v)
		}
		src := opt == "--src-type"
		p.add(neg, func(s *packetState) bool {
			if src {
				return s.fake.isLocal(s.src)
			}
			return s.fake.isLocal(s.dst)
		})
		n++
	}
	if n == 0 {
		return fmt.Errorf("%w: -m addrtype without a type", errSyntax)
	}
	return nil
}

// statistic models --mode nth as the kernel does: a counter per rule,
// starting so that the first packet matches when --packet is 0, and
// advancing only for packets that reach the match.
func (p *ruleParser) statistic() error {
	var mode string
	every, packet := uint64(0), uint64(0)
	for {
		opt, _, ok := p.moduleOption("--mode", "--every", "--packet", "--probability")
		if !ok {
			break
		}
		v, err := p.take()
		if err != nil {
			return err
		}
		switch opt {
		case "--mode":
			mode = v
		case "--every":
			every, err = parseUint(v, 32)
		case "--packet":
			packet, err = parseUint(v, 32)
		case "--probability":
			err = fmt.Errorf("%w: --mode random is not modelled by the fake (it is not deterministic)", errSyntax)
		}
		if err != nil {
			return err
		}
	}
	if mode != "nth" || every == 0 || packet >= every {
		return fmt.Errorf("%w: statistic needs --mode nth --every N --packet P with P < N", errSyntax)
	}
	limit := every - 1
	count := limit - packet
	p.add(false, func(*packetState) bool {
		if count == limit {
			count = 0
		} else {
			count++
		}
		return count == 0
	})
	return nil
}

// recent models the recent match over the fake's lists: --set records the
// source now, --rcheck matches a source seen within --seconds (and --reap
// forgets older ones).
func (p *ruleParser) recent() error {
	var name, cmd string
	var seconds uint64
	reap := false
	for {
		opt, _, ok := p.moduleOption("--name", "--set", "--rcheck", "--seconds", "--reap", "--mask", "--rsource")
		if !ok {
			break
		}
		var err error
		switch opt {
		case "--name":
			name, err = p.take()
		case "--set", "--rcheck":
			cmd = opt
		case "--seconds":
			var v string
			if v, err = p.take(); err == nil {
				seconds, err = parseUint(v, 32)
			}
		case "--reap":
			reap = true
		case "--mask":
			err = p.fullMask()
		}
		if err != nil {
			return err
		}
	}
	if cmd == "" {
		return fmt.Errorf("%w: recent needs --set or --rcheck", errSyntax)
	}
	if name == "" {
		name = "DEFAULT"
	}
	window := time.Duration(seconds) * time.Second
	f, family := p.fake, p.family
	p.add(false, func(s *packetState) bool {
		if cmd == "--set" {
			f.recentSet(family, name, s.src)
			return true
		}
		return f.recentCheck(family, name, s.src, window, reap)
	})
	return nil
}

// fullMask accepts only the all-ones --mask (the default, which
// iptables-save prints): the fake matches whole addresses.
func (p *ruleParser) fullMask() error {
	v, err := p.take()
	if err != nil {
		return err
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return fmt.Errorf("%w: mask %q: %v", errSyntax, v, err)
	}
	for _, b := range a.AsSlice() {
		if b != 0xff {
			return fmt.Errorf("%w: partial recent --mask %s is not modelled by the fake", errSyntax, v)
		}
	}
	return nil
}

func (p *ruleParser) mark() error {
	_, neg, ok := p.moduleOption("--mark")
	if !ok {
		return fmt.Errorf("%w: -m mark without --mark", errSyntax)
	}
	v, err := p.take()
	if err != nil {
		return err
	}
	value, mask, err := valueMask(v, 0xffffffff)
	if err != nil {
		return err
	}
	p.add(neg, func(s *packetState) bool { return s.mark&mask == value&mask })
	return nil
}

// valueMask reads "value[/mask]".
func valueMask(v string, defMask uint32) (uint32, uint32, error) {
	a, b, hasMask := strings.Cut(v, "/")
	value, err := parseUint(a, 32)
	if err != nil {
		return 0, 0, err
	}
	mask := uint64(defMask)
	if hasMask {
		if mask, err = parseUint(b, 32); err != nil {
			return 0, 0, err
		}
	}
	return uint32(value), uint32(mask), nil
}

func (p *ruleParser) conntrack() error {
	_, neg, ok := p.moduleOption("--ctstate")
	if !ok {
		return fmt.Errorf("%w: -m conntrack without --ctstate", errSyntax)
	}
	v, err := p.take()
	if err != nil {
		return err
	}
	states := strings.Split(v, ",")
	for _, st := range states {
		switch st {
		case "NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "SNAT", "DNAT":
		default:
			return fmt.Errorf("%w: unknown conntrack state %q", errSyntax, st)
		}
	}
	p.add(neg, func(s *packetState) bool {
		for _, st := range states {
			if st == s.ctstate {
				return true
			}
		}
		return false
	})
	return nil
}
