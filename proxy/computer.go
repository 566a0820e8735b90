package proxy

import (
	"cmp"
	"maps"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// Computer is Compute made incremental: it remembers what each service came
// to and, when told which services changed, computes only those, so that
// one endpoint moving among 10,000 services costs one service's work. Its
// States are always equal to what Compute returns for the same snapshot;
// it falls back to Compute's full pass whenever a shortcut could differ:
// the first time, when the node changed, and when a changed service shares
// a frontend (address, port, protocol) with another one, since which of
// them owns it depends on all of them.
//
// A Computer is not safe for concurrent use.
type Computer struct {
	opts     Options
	families []Family
	// valid tells whether the fields below hold the last result.
	valid   bool
	results map[types.NamespacedName]*serviceResult
	// wanted counts the services that want each frontend.
	wanted map[frontend]int
	// withProblems are the services whose result has Problems.
	withProblems map[types.NamespacedName]bool
	states       map[Family]*State
	// keys are the Name.Key() of each State's Services, in their order.
	keys map[Family][]string
}

// NewComputer returns a Computer for opts.
func NewComputer(opts Options) *Computer {
	return &Computer{opts: opts, families: sortedFamilies(opts.Families)}
}

// Update returns the States for snap, the Problems of its services, and,
// per family, the Name.Key() of the service ports whose rules differ from
// the previous Update's States (added, removed or changed; nil for a
// family the previous Update did not compute). changed names the services
// that may differ since the previous Update (their Service or their
// endpoints); nodeChanged tells that the Node did. The States must not be
// modified: the next Update shares what did not change.
func (c *Computer) Update(snap *Snapshot, changed map[types.NamespacedName]bool, nodeChanged bool) (map[Family]*State, []Problem, map[Family]map[string]bool) {
	if snap == nil {
		snap = &Snapshot{}
	}
	if c.valid && !nodeChanged {
		if diff, ok := c.update(snap, changed); ok {
			return c.states, c.problems(), diff
		}
	}
	prev := c.states
	c.full(snap)
	diff := map[Family]map[string]bool{}
	for _, f := range c.families {
		if prev[f] != nil {
			diff[f] = changedServices(prev[f], c.states[f])
		} else {
			diff[f] = nil
		}
	}
	return c.states, c.problems(), diff
}

// full computes every service, as Compute does, and remembers the result.
func (c *Computer) full(snap *Snapshot) {
	comp := newComputation(snap, c.opts)
	comp.results = make(map[types.NamespacedName]*serviceResult, len(snap.Services))
	c.states, _ = comp.run()
	c.results = comp.results
	c.wanted = make(map[frontend]int, len(c.results))
	c.withProblems = map[types.NamespacedName]bool{}
	for name, res := range c.results {
		c.remember(name, res)
	}
	c.keys = map[Family][]string{}
	for _, f := range c.families {
		services := c.states[f].Services
		keys := make([]string, len(services))
		for i := range services {
			keys[i] = services[i].Name.Key()
		}
		c.keys[f] = keys
	}
	c.valid = true
}

// update computes the changed services alone and returns the changed
// service ports; ok is false, and nothing changed, when a full pass is
// needed.
func (c *Computer) update(snap *Snapshot, changed map[types.NamespacedName]bool) (diff map[Family]map[string]bool, ok bool) {
	names := slices.SortedFunc(maps.Keys(changed), func(a, b types.NamespacedName) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	next := make([]*serviceResult, len(names))
	// seen are the frontends the changed services want: two changed
	// services wanting one frontend could each own it.
	seen := map[frontend]bool{}
	for i, name := range names {
		old := c.results[name]
		if old != nil && (old.lost || c.sharedWith(old.wants, old)) {
			return nil, false
		}
		res := c.computeOne(snap, name)
		if res == nil {
			continue
		}
		if res.lost || c.sharedWith(res.wants, old) {
			return nil, false
		}
		for _, fe := range res.wants {
			if seen[fe] {
				return nil, false
			}
			seen[fe] = true
		}
		next[i] = res
	}
	diff = map[Family]map[string]bool{}
	states := make(map[Family]*State, len(c.states))
	for _, f := range c.families {
		diff[f] = map[string]bool{}
		cp := *c.states[f]
		cp.Services = slices.Clone(cp.Services)
		states[f] = &cp
		c.keys[f] = slices.Clone(c.keys[f])
	}
	for i, name := range names {
		old := c.results[name]
		for _, f := range c.families {
			var before, after []ServicePort
			if old != nil {
				before = old.ports[familyIndex(f)]
			}
			if next[i] != nil {
				after = next[i].ports[familyIndex(f)]
			}
			c.replace(states[f], f, before, after, diff[f])
		}
		c.forget(name, old)
		if next[i] != nil {
			c.results[name] = next[i]
			c.remember(name, next[i])
		}
	}
	c.states = states
	return diff, true
}

// sharedWith tells whether a service other than the one whose result is
// own wants one of fes.
func (c *Computer) sharedWith(fes []frontend, own *serviceResult) bool {
	for _, fe := range fes {
		n := c.wanted[fe]
		if own != nil && slices.Contains(own.wants, fe) {
			n--
		}
		if n > 0 {
			return true
		}
	}
	return false
}

// computeOne computes one service alone; nil when it gets no rules.
func (c *Computer) computeOne(snap *Snapshot, name types.NamespacedName) *serviceResult {
	svc := snap.Services[name]
	if svc == nil {
		return nil
	}
	comp := newComputation(snap, c.opts)
	comp.results = map[types.NamespacedName]*serviceResult{}
	comp.addService(svc)
	return comp.results[name]
}

// replace swaps the ports before of one service for after in st, whose
// keys are c.keys[f], and records the keys whose ports differ in diff.
func (c *Computer) replace(st *State, f Family, before, after []ServicePort, diff map[string]bool) {
	keys := c.keys[f]
	afterKeys := make(map[string]int, len(after))
	for i := range after {
		afterKeys[after[i].Name.Key()] = i
	}
	for i := range before {
		key := before[i].Name.Key()
		if j, ok := afterKeys[key]; ok && reflect.DeepEqual(before[i], after[j]) {
			delete(afterKeys, key)
			continue
		}
		diff[key] = true
		if at, found := slices.BinarySearch(keys, key); found {
			if j, ok := afterKeys[key]; ok {
				st.Services[at] = after[j]
				delete(afterKeys, key)
				continue
			}
			keys = slices.Delete(keys, at, at+1)
			st.Services = slices.Delete(st.Services, at, at+1)
		}
	}
	for key, j := range afterKeys {
		diff[key] = true
		at, found := slices.BinarySearch(keys, key)
		if found {
			st.Services[at] = after[j]
			continue
		}
		keys = slices.Insert(keys, at, key)
		st.Services = slices.Insert(st.Services, at, after[j])
	}
	c.keys[f] = keys
}

// remember records a service's result in the counts.
func (c *Computer) remember(name types.NamespacedName, res *serviceResult) {
	for _, fe := range res.wants {
		c.wanted[fe]++
	}
	if len(res.problems) > 0 {
		c.withProblems[name] = true
	}
}

// forget removes a service's result from the counts and the results.
func (c *Computer) forget(name types.NamespacedName, res *serviceResult) {
	delete(c.results, name)
	delete(c.withProblems, name)
	if res == nil {
		return
	}
	for _, fe := range res.wants {
		if c.wanted[fe]--; c.wanted[fe] <= 0 {
			delete(c.wanted, fe)
		}
	}
}

// problems returns the Problems of every service, sorted as Compute sorts
// them.
func (c *Computer) problems() []Problem {
	var out []Problem
	for name := range c.withProblems {
		out = append(out, c.results[name].problems...)
	}
	return sortProblems(out)
}
