package testing

import (
	"fmt"
	"net/netip"
	"strings"
)

// action is what a rule does to a packet that matches it.
type action struct {
	// kind is the target: a standard verdict, DNAT, MASQUERADE, MARK, or
	// "" for a rule without target; jump holds a user chain's name.
	kind, jump string
	// to is the DNAT destination; a zero port keeps the packet's.
	to netip.AddrPort
	// value and mask apply MARK as the kernel does: mark = (mark &^ mask) ^ value.
	value, mask uint32
}

// builtinTarget tells whether the fake models a target, and the table it is
// valid in ("" for any).
func builtinTarget(name string) (table string, ok bool) {
	switch name {
	case "ACCEPT", "DROP", "RETURN", "MARK":
		return "", true
	case "REJECT":
		return "filter", true
	case "DNAT", "MASQUERADE":
		return "nat", true
	}
	return "", false
}

func (p *ruleParser) target() error {
	name, err := p.take()
	if err != nil {
		return err
	}
	p.rule.Target = name
	table, builtin := builtinTarget(name)
	if !builtin {
		if strings.HasPrefix(name, "-") || name == "" {
			return fmt.Errorf("%w: bad target %q", errSyntax, name)
		}
		p.rule.action = action{kind: "JUMP", jump: name}
		return p.end()
	}
	if table != "" && table != p.table {
		return fmt.Errorf("%w: target %s is not valid in table %s", errSyntax, name, p.table)
	}
	p.rule.action = action{kind: name}
	switch name {
	case "REJECT":
		if _, _, ok := p.moduleOption("--reject-with"); ok {
			_, err = p.take()
		}
	case "DNAT":
		err = p.dnat()
	case "MARK":
		err = p.markTarget()
	case "MASQUERADE":
		p.moduleOption("--random-fully")
	}
	if err != nil {
		return err
	}
	return p.end()
}

// end checks that nothing follows the target's options.
func (p *ruleParser) end() error {
	if p.i < len(p.args) {
		return fmt.Errorf("%w: unexpected %q after the target", errSyntax, p.args[p.i])
	}
	return nil
}

func (p *ruleParser) dnat() error {
	if _, _, ok := p.moduleOption("--to-destination"); !ok {
		return fmt.Errorf("%w: DNAT without --to-destination", errSyntax)
	}
	v, err := p.take()
	if err != nil {
		return err
	}
	if ap, err := netip.ParseAddrPort(v); err == nil {
		if p.proto != "tcp" && p.proto != "udp" && p.proto != "sctp" {
			return fmt.Errorf("%w: DNAT to a port needs -p tcp, udp or sctp", errSyntax)
		}
		if familyOf(ap.Addr()) != p.family || ap.Port() == 0 {
			return fmt.Errorf("%w: bad DNAT destination %q", errSyntax, v)
		}
		p.rule.action.to = ap
		return nil
	}
	a, err := netip.ParseAddr(strings.Trim(v, "[]"))
	if err != nil || familyOf(a) != p.family {
		return fmt.Errorf("%w: bad DNAT destination %q", errSyntax, v)
	}
	p.rule.action.to = netip.AddrPortFrom(a, 0)
	return nil
}

func (p *ruleParser) markTarget() error {
	opt, _, ok := p.moduleOption("--set-xmark", "--set-mark", "--or-mark", "--xor-mark", "--and-mark")
	if !ok {
		return fmt.Errorf("%w: MARK without an operation", errSyntax)
	}
	v, err := p.take()
	if err != nil {
		return err
	}
	value, mask, err := valueMask(v, 0xffffffff)
	if err != nil {
		return err
	}
	a := &p.rule.action
	switch opt {
	case "--set-xmark":
		a.value, a.mask = value, mask
	case "--set-mark":
		a.value, a.mask = value, mask|value
	case "--or-mark":
		a.value, a.mask = value, value
	case "--xor-mark":
		a.value, a.mask = value, 0
	case "--and-mark":
		a.value, a.mask = 0, ^value
	}
	return nil
}
