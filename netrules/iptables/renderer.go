package iptables

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

// Renderer renders the payloads of one backend and remembers what the last
// one left in the kernel, so that a partial payload is as small as the
// change: the chains of the changed service ports, the top-level chains of
// a table only when a changed port's rules in them changed, and no table at
// all when nothing in it changed. An endpoint moving in a service of 10,000
// is then a payload of a few rules, where kube-proxy rewrites its
// KUBE-SERVICES chain of 10,000 jumps.
//
// The memory is trusted: whether a payload is full or partial is the
// caller's decision (the proxier's, through the Backend), and a partial
// one is rendered on top of what the last one left. After a payload failed
// to apply, call Invalidate: the Renderer then remembers nothing, as a new
// one, until its next render. A Renderer is not safe for concurrent use.
type Renderer struct {
	opts RenderOptions
	// valid tells whether the fields below describe the kernel.
	valid bool
	// services are the rendered service ports by Name.Key(); order lists
	// their keys sorted, as State.Services is.
	services map[string]*renderedService
	order    []string
	owners   chainOwners
	// natEntries, filterEntries and ownRules count the rules of all the
	// service ports in the top-level chains of each table and in their own.
	natEntries, filterEntries, ownRules int
}

// renderedService is what one service port put in the kernel.
type renderedService struct {
	// nat and filter are its rules in the top-level chains of each table,
	// as restore input; natRules and filterRules count them.
	nat, filter           []byte
	natRules, filterRules int
	// chains are its own chains (in nat) and ownRules the rules in them.
	chains   []string
	ownRules int
}

// NewRenderer returns a Renderer that remembers nothing yet: its first
// Render plans every service port.
func NewRenderer(opts RenderOptions) *Renderer {
	return &Renderer{opts: opts}
}

// Invalidate forgets what the kernel holds: call it when a payload failed
// to apply.
func (r *Renderer) Invalidate() {
	*r = Renderer{opts: r.opts}
}

// Render renders the payload that brings the kernel from what the last
// payload left to state. changed holds the Name.Key() of the service ports
// that may differ; nil asks for a full payload. A partial payload is
// rendered from the Renderer's memory, and so needs the node-wide settings
// (every field of State but Services) of the last render: when they
// change, every port's rules do, and the caller asks a full payload. A
// Renderer that remembers nothing (a new one, or after Invalidate) renders
// a partial payload as the package's Render does: every service port is
// planned and the top-level chains rewritten. existing holds the berth
// chains the kernel has now; it is read only when the Renderer plans every
// service, to remove the chains nothing uses any more.
func (r *Renderer) Render(state *proxy.State, changed map[string]bool, existing ChainSet) (Payload, error) {
	if err := r.opts.Validate(); err != nil {
		return Payload{}, err
	}
	g, err := newGlobals(state, r.opts)
	if err != nil {
		return Payload{}, err
	}
	var p Payload
	if r.valid && changed != nil {
		p, err = r.renderChanged(state, g, changed)
	} else {
		p, err = r.renderAll(state, g, changed, existing, false)
	}
	if err != nil {
		r.Invalidate()
		return Payload{}, err
	}
	r.valid = true
	return p, nil
}

// RenderStreamed renders a full payload, as Render with nil changes, whose
// nat table is not held in memory: its Data is nil and xtables.TableData.WriteTo
// renders the service ports' chains (nearly all of the payload: 28 MB at
// 10,000 services) as they are written, e.g. into iptables-restore's
// standard input. The payload can be written any number of times, giving
// the same bytes as Render, as long as state is not modified.
func (r *Renderer) RenderStreamed(state *proxy.State, existing ChainSet) (Payload, error) {
	if err := r.opts.Validate(); err != nil {
		return Payload{}, err
	}
	g, err := newGlobals(state, r.opts)
	if err != nil {
		return Payload{}, err
	}
	p, err := r.renderAll(state, g, nil, existing, true)
	if err != nil {
		r.Invalidate()
		return Payload{}, err
	}
	r.valid = true
	return p, nil
}

// renderAll plans every service port and writes the top-level chains in
// full, and the chains of the service ports in changed (all for nil) or
// missing from existing. With stream (and nil changes), the service ports'
// rules are only counted here, and written by the nat table's natStream.
func (r *Renderer) renderAll(state *proxy.State, g *globals, changed map[string]bool, existing ChainSet, stream bool) (Payload, error) {
	*r = Renderer{
		opts:     r.opts,
		services: make(map[string]*renderedService, len(state.Services)),
		order:    make([]string, 0, len(state.Services)),
		owners:   make(chainOwners, len(state.Services)*8),
	}
	w := newPayloadWriter(g)
	w.own.CountOnly = stream
	w.reserve(state)
	var ns *natStream
	if stream {
		ns = &natStream{g: g, services: state.Services, chains: make([][]string, 0, len(state.Services))}
	}
	p := Payload{Full: true, Chains: make(ChainSet, max(len(existing), 8*len(state.Services))+16), ServiceRules: map[string]int{}}
	w.writeTopNAT()
	w.writeTopFilter()
	for i := range state.Services {
		sp, err := planService(&state.Services[i], g)
		if err != nil {
			return Payload{}, err
		}
		if r.services[sp.key] != nil {
			return Payload{}, fmt.Errorf("%w: service port %s is listed twice", ErrInvalidState, sp.key)
		}
		if err := r.owners.claim(&sp); err != nil {
			return Payload{}, err
		}
		rs := w.entries(&sp, w.nat, w.filter)
		if changed == nil || changed[sp.key] || !allIn(existing, rs.chains) {
			rs.ownRules = w.writeService(&sp, rs.chains)
			p.ServiceRules[sp.key] = rs.ownRules
		} else {
			// Left as it is in the kernel, but its rules still count.
			p.Full = false
			rs.ownRules = newPayloadWriter(g).writeService(&sp, rs.chains)
		}
		for _, c := range rs.chains {
			p.Chains.Add(xtables.TableNAT, c)
		}
		if ns != nil {
			ns.chains = append(ns.chains, rs.chains)
		}
		r.add(sp.key, rs)
		r.order = append(r.order, sp.key)
	}
	w.writeNodePortJump()
	for _, t := range []xtables.Table{xtables.TableNAT, xtables.TableFilter} {
		for _, c := range topChains(t) {
			p.Chains.Add(t, c)
		}
	}
	w.removeStale(existing, p.Chains)
	p.TopRules = w.nat.Rules() + w.filter.Rules()
	p.Rules = p.TopRules + r.ownRules
	nat := xtables.TableData{Table: xtables.TableNAT}
	if ns != nil {
		ns.head, ns.top, ns.tail = w.nat.Head(w.own), w.nat.RuleBytes(), w.nat.Tail(w.own)
		nat = xtables.StreamedTable(xtables.TableNAT, ns)
	} else {
		nat.Data = w.nat.Bytes(w.own)
	}
	p.Tables = []xtables.TableData{{Table: xtables.TableFilter, Data: w.filter.Bytes()}, nat}
	return p, nil
}

// natStream writes a streamed full payload's nat table: the head (chain
// declarations) and the top-level rules were rendered with the plan, each
// service port's own rules are rendered again as they are written, one
// port at a time.
type natStream struct {
	g *globals
	// head is "*nat" and the declarations; top the top-level rules; tail
	// the deletions and COMMIT.
	head, top, tail []byte
	// services are the State's ports; chains the planned chains of each.
	services []proxy.ServicePort
	chains   [][]string
}

// streamBufferSize is how much of a streamed payload is buffered before it
// is written out.
const streamBufferSize = 256 << 10

// WriteTo implements io.WriterTo.
func (s *natStream) WriteTo(out io.Writer) (int64, error) {
	cw := &countingWriter{w: out}
	bw := bufio.NewWriterSize(cw, streamBufferSize)
	bw.Write(s.head)
	bw.Write(s.top)
	w := newPayloadWriter(s.g)
	for i := range s.services {
		sp, err := planService(&s.services[i], s.g)
		if err != nil {
			return cw.n, err
		}
		w.own.Reset()
		w.writeService(&sp, s.chains[i])
		if _, err := bw.Write(w.own.RuleBytes()); err != nil {
			return cw.n, err
		}
	}
	bw.Write(s.tail)
	err := bw.Flush()
	return cw.n, err
}

// countingWriter counts what goes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// renderChanged writes the chains of the changed service ports, removes
// the chains they no longer use, and rewrites a table's top-level chains
// only when a changed port's rules in them changed.
func (r *Renderer) renderChanged(state *proxy.State, g *globals, changed map[string]bool) (Payload, error) {
	keys := make([]string, 0, len(changed))
	for key := range changed {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	// Release every changed port's chains before claiming new ones, so
	// that the order of the keys cannot matter.
	var released []string
	old := make([]*renderedService, len(keys))
	for i, key := range keys {
		if old[i] = r.services[key]; old[i] != nil {
			r.owners.release(key, old[i].chains)
			released = append(released, old[i].chains...)
		}
	}
	w := newPayloadWriter(g)
	scratch := newPayloadWriter(g)
	p := Payload{ServiceRules: map[string]int{}}
	var natDirty, filterDirty bool
	for i, key := range keys {
		sp, ok, err := findServicePort(state, key)
		if err != nil {
			return Payload{}, err
		}
		if !ok {
			if old[i] != nil {
				natDirty = natDirty || old[i].natRules > 0
				filterDirty = filterDirty || old[i].filterRules > 0
				r.remove(key)
			}
			continue
		}
		plan, err := planService(sp, g)
		if err != nil {
			return Payload{}, err
		}
		if err := r.owners.claim(&plan); err != nil {
			return Payload{}, err
		}
		scratch.nat.Reset()
		scratch.filter.Reset()
		rs := scratch.entries(&plan, scratch.nat, scratch.filter)
		rs.ownRules = w.writeService(&plan, rs.chains)
		p.ServiceRules[key] = rs.ownRules
		if o := old[i]; o != nil {
			natDirty = natDirty || !bytes.Equal(o.nat, rs.nat)
			filterDirty = filterDirty || !bytes.Equal(o.filter, rs.filter)
			r.remove(key)
		} else {
			natDirty = natDirty || rs.natRules > 0
			filterDirty = filterDirty || rs.filterRules > 0
		}
		r.insert(key, rs)
	}
	if len(r.order) != len(state.Services) {
		return Payload{}, fmt.Errorf("%w: %d service ports, %d after the changes: an added or removed port is missing from the changes",
			ErrInvalidState, len(state.Services), len(r.order))
	}
	for _, c := range released {
		if _, used := r.owners[c]; !used {
			w.nat.Remove(c)
		}
	}
	p.TopRules = r.writeTop(g, w, natDirty, filterDirty)
	p.Rules = p.TopRules + r.ownRules
	if filterDirty {
		p.Tables = append(p.Tables, xtables.TableData{Table: xtables.TableFilter, Data: w.filter.Bytes()})
	}
	if natDirty || !w.own.Empty() || !w.nat.Empty() {
		p.Tables = append(p.Tables, xtables.TableData{Table: xtables.TableNAT, Data: w.nat.Bytes(w.own)})
	}
	return p, nil
}

// writeTop writes the top-level chains of the dirty tables into w, from
// the remembered rules of every service port, and returns the number of
// rules in the top-level chains of both tables.
func (r *Renderer) writeTop(g *globals, w *payloadWriter, natDirty, filterDirty bool) int {
	static := newPayloadWriter(g)
	static.writeTopNAT()
	static.writeTopFilter()
	static.writeNodePortJump()
	if natDirty {
		// Room for the whole nat input, built in this buffer in the end
		// (xtables.Writer.Bytes): the top-level rules of every port are
		// most of it.
		size := w.own.Size() + w.nat.Size() + 4096
		for _, key := range r.order {
			size += len(r.services[key].nat)
		}
		w.nat.Grow(size, 0)
		w.writeTopNAT()
		for _, key := range r.order {
			rs := r.services[key]
			w.nat.AddRendered(rs.nat, rs.natRules)
		}
		w.writeNodePortJump()
	}
	if filterDirty {
		w.writeTopFilter()
		for _, key := range r.order {
			rs := r.services[key]
			w.filter.AddRendered(rs.filter, rs.filterRules)
		}
	}
	return static.nat.Rules() + static.filter.Rules() + r.natEntries + r.filterEntries
}

// Estimated sizes of a full payload, per service port and per endpoint,
// from the payloads of the benchmarks (about 2.9 kB per port of five
// endpoints): growing the buffers by doubling instead would allocate about
// four times the payload, at 10,000 services 120 MB of garbage per sync.
const (
	ownBytesPerPort, ownBytesPerEndpoint     = 700, 450
	chainBytesPerPort, chainBytesPerEndpoint = 80, 40
	entryBytesPerPort                        = 250
)

// reserve grows w's buffers to what a full payload of state likely needs.
func (w *payloadWriter) reserve(state *proxy.State) {
	ports, eps := len(state.Services), 0
	for i := range state.Services {
		eps += len(state.Services[i].ClusterEndpoints)
	}
	if !w.own.CountOnly {
		// The own rules buffer also takes the rest of the nat input in
		// the end (xtables.Writer.Bytes): the chain declarations and
		// top-level rules.
		w.own.Grow(ports*(ownBytesPerPort+2*chainBytesPerPort+entryBytesPerPort)+eps*(ownBytesPerEndpoint+2*chainBytesPerEndpoint), 0)
	}
	w.own.Grow(0, ports*chainBytesPerPort+eps*chainBytesPerEndpoint)
	w.nat.Grow(ports*entryBytesPerPort, 0)
}

// entries writes the service port's rules in the top-level chains into nat
// and filter and returns them as a renderedService.
func (w *payloadWriter) entries(p *servicePlan, nat, filter *xtables.Writer) *renderedService {
	n0, f0 := len(nat.RuleBytes()), len(filter.RuleBytes())
	nr0, fr0 := nat.Rules(), filter.Rules()
	w.writeEntries(p, nat, filter)
	return &renderedService{
		nat:         bytes.Clone(nat.RuleBytes()[n0:]),
		filter:      bytes.Clone(filter.RuleBytes()[f0:]),
		natRules:    nat.Rules() - nr0,
		filterRules: filter.Rules() - fr0,
		chains:      p.chains(),
	}
}

// add records a rendered service port (not in order).
func (r *Renderer) add(key string, rs *renderedService) {
	r.services[key] = rs
	r.natEntries += rs.natRules
	r.filterEntries += rs.filterRules
	r.ownRules += rs.ownRules
}

// insert records a rendered service port and puts its key in order.
func (r *Renderer) insert(key string, rs *renderedService) {
	r.add(key, rs)
	if i, found := slices.BinarySearch(r.order, key); !found {
		r.order = slices.Insert(r.order, i, key)
	}
}

// remove forgets a service port.
func (r *Renderer) remove(key string) {
	rs := r.services[key]
	if rs == nil {
		return
	}
	r.natEntries -= rs.natRules
	r.filterEntries -= rs.filterRules
	r.ownRules -= rs.ownRules
	delete(r.services, key)
	if i, found := slices.BinarySearch(r.order, key); found {
		r.order = slices.Delete(r.order, i, i+1)
	}
}

// findServicePort finds the service port with the key in state, whose
// Services are sorted by key; a key listed twice is an error.
func findServicePort(state *proxy.State, key string) (*proxy.ServicePort, bool, error) {
	i, found := slices.BinarySearchFunc(state.Services, key, func(sp proxy.ServicePort, key string) int {
		return strings.Compare(sp.Name.Key(), key)
	})
	if !found {
		return nil, false, nil
	}
	if i+1 < len(state.Services) && state.Services[i+1].Name.Key() == key {
		return nil, false, fmt.Errorf("%w: service port %s is listed twice", ErrInvalidState, key)
	}
	return &state.Services[i], true, nil
}
