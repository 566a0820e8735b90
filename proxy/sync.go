package proxy

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/proxy/metrics"
)

// sync is one run of the loop.
func (p *Proxier) sync(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	// A sync that keeps failing must turn the proxy unhealthy even when no
	// event queued anything.
	p.freshness.QueuedUpdate()
	start := p.cfg.Clock.Now()
	snap, changes := p.tracker.snapshot()
	p.state.gc.follow(len(snap.Services))
	for name, t := range changes.Services {
		if prev, ok := p.state.triggers[name]; !ok || (!t.IsZero() && (prev.IsZero() || t.Before(prev))) {
			p.state.triggers[name] = t
		}
	}
	names := make(map[types.NamespacedName]bool, len(changes.Services))
	for name := range changes.Services {
		names[name] = true
	}
	states, problems, diffs := p.state.computer.Update(snap, names, changes.Node)
	p.report(ctx, snap, problems)

	var errs []error
	for _, f := range p.cfg.Options.Families {
		if err := p.syncFamily(ctx, f, states[f], diffs[f]); err != nil {
			errs = append(errs, err)
		}
	}
	p.syncHealthChecks(ctx, states)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	p.observeProgramming()
	p.freshness.Updated()
	p.ready.Store(true)
	logger.V(4).Info("Synced proxy rules", "took", p.cfg.Clock.Since(start), "changedServices", len(changes.Services))
	return nil
}

// FullSyncPeriod is the most time between full syncs, which rewrite every
// service's rules (and so repair any drift). The syncs every SyncPeriod in
// between are partial, as with kube-proxy: on a large node a full sync can
// take longer than SyncPeriod, and forcing one every SyncPeriod would make
// every sync full and every endpoint change wait for it.
const FullSyncPeriod = time.Hour

// syncFamily brings one family's backend to st: in full when
// fullSyncReason gives a reason, else only the changed service ports
// (diff, relative to the previous sync's State), and not at all when
// nothing changed. It is the one place that decides whether a sync is
// full: the backend does what it is asked. A backend that cannot trust its
// memory of the kernel refuses a partial sync with ErrFullSyncRequired,
// and the sync is then full at once, as the next one would be.
func (p *Proxier) syncFamily(ctx context.Context, f Family, st *State, diff map[string]bool) error {
	logger := klog.FromContext(ctx).WithValues("family", familyLabel(f))
	s := p.state
	prev := s.applied[f]
	start := p.cfg.Clock.Now()
	reason := s.fullSyncReason(f, st, diff, start)
	full := reason != ""
	var changed map[string]bool
	if !full {
		changed = diff
		if len(changed) == 0 {
			return nil
		}
	}
	backend := p.cfg.Backends[f]
	res, err := backend.Sync(ctx, st, changed)
	if !full && errors.Is(err, ErrFullSyncRequired) {
		logger.V(2).Info("The backend cannot sync partially; syncing in full", "reason", err)
		full, reason, changed = true, "backend asked", nil
		res, err = backend.Sync(ctx, st, nil)
	}
	took := p.cfg.Clock.Since(start)
	if err != nil {
		s.needFull[f] = true
		logger.Error(err, "Syncing proxy rules failed; the next sync will be full", "full", full)
		return fmt.Errorf("sync %s rules: %w", familyLabel(f), err)
	}
	s.needFull[f] = false
	if full {
		s.lastFull[f] = start
	}
	s.applied[f] = st
	if full && len(st.Services) >= bigState {
		// What the full sync held (every service's plan, the payload) is
		// garbage now: hand its pages back at once rather than keep them
		// for the next full sync, an hour away.
		defer debug.FreeOSMemory()
	}
	logger.V(2).Info("Synced proxy rules", "full", full, "why", reason, "changed", len(changed), "rules", res.Rules, "bytes", res.Bytes, "took", took)
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.ObserveSync(metrics.Sync{Family: familyLabel(f), Full: full, Took: took, Ended: p.cfg.Clock.Now(), Rules: res.Rules, Bytes: res.Bytes})
	}
	p.clearConntrack(ctx, prev, st)
	return nil
}

// fullSyncReason tells why the sync of family f to st must be full, or ""
// when a partial one (of diff) will do: the first sync, when there is no
// diff (the Computer did not compute the family before), after a failed
// sync, every FullSyncPeriod, and when the node-wide settings changed,
// since every service's rules depend on them.
func (s *syncState) fullSyncReason(f Family, st *State, diff map[string]bool, now time.Time) string {
	prev := s.applied[f]
	switch {
	case prev == nil:
		return "first sync"
	case diff == nil:
		return "no diff"
	case s.needFull[f]:
		return "after an error"
	case now.Sub(s.lastFull[f]) >= FullSyncPeriod:
		return "hourly"
	case !sameGlobals(prev, st):
		return "node-wide settings changed"
	}
	return ""
}

// clearConntrack removes the UDP flows a successful sync left stale.
// Failures are logged: the rules are right, only old flows linger.
func (p *Proxier) clearConntrack(ctx context.Context, prev, next *State) {
	if p.cfg.Conntrack == nil {
		return
	}
	logger := klog.FromContext(ctx)
	stale := findStaleUDP(prev, next)
	for _, ip := range stale.serviceIPs {
		if err := p.cfg.Conntrack.ClearUDPForServiceIP(ip); err != nil {
			logger.Error(err, "Clearing UDP conntrack entries failed", "serviceIP", ip)
		}
	}
	for _, e := range stale.endpoints {
		if err := p.cfg.Conntrack.ClearUDPForEndpoint(e.serviceIP, e.port, e.endpointIP); err != nil {
			logger.Error(err, "Clearing UDP conntrack entries failed", "serviceIP", e.serviceIP, "port", e.port, "endpointIP", e.endpointIP)
		}
	}
}

// syncHealthChecks opens the health-check node ports of the computed
// services and tells each its ready local endpoints.
func (p *Proxier) syncHealthChecks(ctx context.Context, states map[Family]*State) {
	if p.cfg.ServiceHealth == nil {
		return
	}
	ports, counts := healthChecks(states)
	if err := p.cfg.ServiceHealth.SyncServices(ctx, ports); err != nil {
		klog.FromContext(ctx).Error(err, "Opening health-check node ports failed")
	}
	if err := p.cfg.ServiceHealth.SyncEndpoints(counts); err != nil {
		klog.FromContext(ctx).Error(err, "Updating health-check endpoint counts failed")
	}
}

// healthChecks returns the health-check node port of every
// externalTrafficPolicy: Local service and its number of ready local
// endpoints (the most any of its ports has, in any family).
func healthChecks(states map[Family]*State) (map[types.NamespacedName]uint16, map[types.NamespacedName]int) {
	ports := map[types.NamespacedName]uint16{}
	counts := map[types.NamespacedName]int{}
	for _, st := range states {
		for i := range st.Services {
			sp := &st.Services[i]
			if !sp.ExternalLocal || sp.HealthCheckNodePort == 0 {
				continue
			}
			name := types.NamespacedName{Namespace: sp.Name.Namespace, Name: sp.Name.Name}
			ports[name] = sp.HealthCheckNodePort
			n := 0
			for _, e := range sp.ExternalEndpoints {
				if e.Local && e.Ready {
					n++
				}
			}
			counts[name] = max(counts[name], n)
		}
	}
	return ports, counts
}

// observeProgramming records, after a successful sync, how long each
// applied EndpointSlice change took from its trigger to the rules.
func (p *Proxier) observeProgramming() {
	if p.cfg.Metrics != nil {
		now := p.cfg.Clock.Now()
		for _, t := range p.state.triggers {
			if t.IsZero() {
				continue
			}
			for _, f := range p.cfg.Options.Families {
				p.cfg.Metrics.NetworkProgramming.WithLabelValues(familyLabel(f)).Observe(now.Sub(t).Seconds())
			}
		}
	}
	clear(p.state.triggers)
}

// report emits one Warning Event per new Problem of a service; problems
// that went away are forgotten, so that they are reported again if they
// come back.
func (p *Proxier) report(ctx context.Context, snap *Snapshot, problems []Problem) {
	logger := klog.FromContext(ctx)
	current := map[types.NamespacedName]map[Problem]bool{}
	for _, pr := range problems {
		if current[pr.Service] == nil {
			current[pr.Service] = map[Problem]bool{}
		}
		current[pr.Service][pr] = true
		if p.state.reported[pr.Service][pr] {
			continue
		}
		logger.Info("Skipping bad service input", "service", pr.Service, "reason", pr.Reason, "message", pr.Message)
		if svc := snap.Services[pr.Service]; svc != nil && p.cfg.Recorder != nil {
			p.cfg.Recorder.Event(svc, v1.EventTypeWarning, pr.Reason, pr.Message)
		}
	}
	p.state.reported = current
}

// familyLabel is the ip_family label value of f.
func familyLabel(f Family) string {
	if f == IPv6 {
		return string(v1.IPv6Protocol)
	}
	return string(v1.IPv4Protocol)
}
