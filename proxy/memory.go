package proxy

import (
	"runtime/debug"
)

// bigState is the number of services from which a full sync hands its
// memory back to the kernel as it ends.
const bigState = 2000

// tightState is the number of services from which the proxy keeps the GOGC
// at bigStateGCPercent. Below it berth's usual GOGC of 50 keeps the peak
// RSS within bounds, and an endpoint change, whose sync allocates a few
// MB, does not start a collection: with a tight GOGC, collections and their
// assists make every small sync slower. The measurements behind both sizes
// are in docs/proxy.md (Memory).
const tightState = 7000

// bigStateGCPercent is the GOGC from tightState services on. At berth's
// usual 50 the heap grows to 1.5 times what is live before the collector
// runs, and the runtime keeps 10 % more than that mapped; at that size
// what is live (informer objects, computed state, the renderer's memory)
// is large and every sync adds its garbage, so the headroom alone is a
// large part of the RSS. At 10 the heap stays within 1.1 times what is
// live, for some more CPU per sync.
const bigStateGCPercent = 10

// gcFollower sets the GOGC to bigStateGCPercent while the state has
// tightState services or more, and back when it has fewer, unless the GOGC
// was tighter already (or off: the operator's choice). It is changed only
// when the state crosses tightState: lowering it under a heap already
// above the lower goal starts a collection at once.
type gcFollower struct {
	tight bool
	prev  int
}

// follow adjusts the GOGC to a state of n services.
func (g *gcFollower) follow(n int) {
	switch big := n >= tightState; {
	case big && !g.tight:
		g.prev = debug.SetGCPercent(bigStateGCPercent)
		if g.prev < bigStateGCPercent {
			debug.SetGCPercent(g.prev)
		}
		g.tight = true
	case !big && g.tight:
		if g.prev >= bigStateGCPercent {
			debug.SetGCPercent(g.prev)
		}
		g.tight = false
	}
}
