package proxybench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/test/testbed"
)

// sizeResult is everything measured for one size.
type sizeResult struct {
	services int
	// mode is the iptables backend berth uses on the node, "nft" or
	// "legacy": its floor is the one berth is held to.
	mode string
	// create is how long creating the objects took, berth stopped.
	create time.Duration
	// payload is what berth should send, rendered from the objects.
	payload *payloads
	// floors are bare iptables-restore's times, by backend name.
	floors map[string]floor
	cold   coldResult
	flips  []flipResult
	// removal runs from deleting the cold phase's objects to berth
	// having removed their rules.
	removal time.Duration
	incr    incrResult
	// fullSyncs and fullSyncTime are berth's full syncs from its start
	// in the cold phase to the end of the size, which lasted berthUp.
	fullSyncs             uint64
	fullSyncTime, berthUp time.Duration
}

// coldResult is berth's start with the objects already there.
type coldResult struct {
	pid int
	// started is when berth was started.
	started time.Time
	// wall runs from starting berth to the end of the sync that put every
	// object's rules in the kernel.
	wall time.Duration
	// sync is berth's own duration of its syncs until then (one full
	// sync, unless syncs says otherwise), and bytes what they sent.
	sync  time.Duration
	syncs uint64
	bytes float64
	// cpu is berth's CPU use from its start to then.
	cpu cpuTimes
	// peakRSS and endRSS are its memory at its highest and at the end;
	// heapInuse is its Go heap in use at the end.
	peakRSS, endRSS, heapInuse uint64
}

// flipResult is one endpoint address changed with the objects present.
type flipResult struct {
	// latency runs from the Update call to the end of berth's sync that
	// put it in the kernel; programming is berth's own
	// network_programming_duration of it; api is how long the Update call
	// took (about when berth's watch can see the change).
	latency, programming, api time.Duration
	// sync is the duration of berth's sync(s) meanwhile, and bytes what
	// they sent, on average.
	sync  time.Duration
	bytes float64
	// fullSyncs and partialSyncs count berth's syncs meanwhile.
	fullSyncs, partialSyncs uint64
	// busy tells that berth had not settled before the flip (a sync in
	// progress, or just ended).
	busy bool
}

// incrResult is the objects created while berth runs.
type incrResult struct {
	// create runs from the first Create call to the return of the last.
	create time.Duration
	// latency runs from the last Create call's return to the end of the
	// sync that put every object in the kernel.
	latency time.Duration
	// fullSyncs and partialSyncs count berth's syncs from the first
	// Create call to then; cpu and peakRSS are its use over that window.
	fullSyncs, partialSyncs uint64
	cpu                     cpuTimes
	peakRSS                 uint64
}

// runSize runs every phase for n services: cold start (with the floors
// measured while berth is stopped), flips, removal, incremental creation,
// removal.
func (e *env) runSize(ctx context.Context, n int) (r *sizeResult, err error) {
	r = &sizeResult{services: n, mode: e.mode, floors: map[string]floor{}}
	timeout := phaseTimeout(n)
	coldNS, incrNS := fmt.Sprintf("proxybench-%d-cold", n), fmt.Sprintf("proxybench-%d-incr", n)
	defer func() {
		if err != nil {
			e.salvage(context.WithoutCancel(ctx), timeout, coldNS, incrNS)
		}
	}()
	if err := e.coldPhase(ctx, r, coldNS, timeout); err != nil {
		return r, err
	}
	for f := range e.flips {
		progress("%d services: endpoint flip %d of %d", n, f+1, e.flips)
		fr, err := e.flip(ctx, coldNS, n/2+f, f, r, timeout)
		if err != nil {
			return r, err
		}
		r.flips = append(r.flips, fr)
	}
	progress("%d services: deleting them", n)
	if r.removal, err = e.remove(ctx, coldNS, timeout); err != nil {
		return r, err
	}
	progress("%d services: creating them with berth running", n)
	if r.incr, err = e.incremental(ctx, incrNS, n, r.cold.pid, timeout); err != nil {
		return r, err
	}
	progress("%d services: deleting them", n)
	if _, err := e.remove(ctx, incrNS, timeout); err != nil {
		return r, err
	}
	m, err := e.metrics.scrape(ctx)
	if err != nil {
		return r, err
	}
	r.fullSyncs, r.fullSyncTime, r.berthUp = m.full.count, seconds(m.full.sum), time.Since(r.cold.started)
	return r, nil
}

// salvage leaves the bed ready for the next size after a failure: berth
// running and the benchmark's objects gone.
func (e *env) salvage(ctx context.Context, timeout time.Duration, namespaces ...string) {
	if _, err := bed.FindProcess(e.node, berthArgv0); err != nil {
		if _, err := startBerth(ctx, e.node); err != nil {
			progress("restarting berth after a failure: %v", err)
		}
	}
	for _, ns := range namespaces {
		if err := deleteObjects(ctx, e.client, ns, timeout); err != nil {
			progress("cleaning up after a failure: %v", err)
		}
	}
}

// coldPhase stops berth, creates the objects, measures the floors of
// their payloads and then berth's start.
func (e *env) coldPhase(ctx context.Context, r *sizeResult, ns string, timeout time.Duration) error {
	progress("%d services: stopping berth, creating the objects", r.services)
	if err := stopBerth(e.node); err != nil {
		return err
	}
	start := time.Now()
	last, err := createObjects(ctx, e.client, ns, r.services)
	if err != nil {
		return err
	}
	r.create = last.Sub(start)
	c, err := fetchCluster(ctx, e.client, e.node)
	if err != nil {
		return err
	}
	if r.payload, err = buildPayloads(e.view, c, ns, r.services/2); err != nil {
		return err
	}
	for _, bins := range floorBackends {
		progress("%d services: floor with %s", r.services, bins.restore)
		f, err := measureFloor(ctx, bins, r.payload)
		if err != nil {
			return err
		}
		r.floors[bins.name] = f
	}
	progress("%d services: starting berth", r.services)
	if r.cold, err = e.coldStart(ctx, r.payload.rules, timeout); err != nil {
		return err
	}
	out, err := bed.Output(ctx, e.node, "iptables-save", "-t", "nat")
	if err != nil {
		return err
	}
	if got := countEndpointChains(out); got != r.payload.endpointChains {
		return fmt.Errorf("after berth's start the node holds %d endpoint chains, want %d", got, r.payload.endpointChains)
	}
	return nil
}

// coldStart starts berth and waits until it holds rules rules.
func (e *env) coldStart(ctx context.Context, rules int, timeout time.Duration) (coldResult, error) {
	start := time.Now()
	pid, err := startBerth(ctx, e.node)
	if err != nil {
		return coldResult{}, err
	}
	sampler := testbed.SampleRSS(ctx, pid, 100*time.Millisecond)
	m, err := e.metrics.waitFor(ctx, timeout, "berth's rules after its start", func(m proxyMetrics) bool { return m.rules >= rules })
	peak := sampler()
	if err != nil {
		return coldResult{}, err
	}
	r := coldResult{pid: pid, started: start, wall: m.lastSync.Sub(start), syncs: m.full.count + m.partial.count, heapInuse: m.heapInuse}
	r.sync = seconds(m.full.sum + m.partial.sum)
	r.bytes = m.bytes.mean()
	if r.cpu, err = readCPU(pid); err != nil {
		return r, err
	}
	st, err := testbed.ReadProcessStats(pid)
	if err != nil {
		return r, err
	}
	r.peakRSS, r.endRSS = max(peak, st.PeakRSS), st.RSS
	return r, nil
}

// flip moves endpoint 0 of Service i in ns to flipIP(f) and waits until
// berth has synced it, then checks the kernel has it.
func (e *env) flip(ctx context.Context, ns string, i, f int, r *sizeResult, timeout time.Duration) (flipResult, error) {
	quiet, err := e.waitQuiet(ctx, r.cold.pid, 2*fullSyncGuess(r.services)+30*time.Second)
	if err != nil {
		return flipResult{}, err
	}
	slices := e.client.DiscoveryV1().EndpointSlices(ns)
	slice, err := slices.Get(ctx, serviceName(i)+"-bench", metav1.GetOptions{})
	if err != nil {
		return flipResult{}, fmt.Errorf("flip: %w", err)
	}
	before, err := e.metrics.scrape(ctx)
	if err != nil {
		return flipResult{}, err
	}
	at := time.Now()
	if _, err := slices.Update(ctx, flipped(slice, flipIP(f), at), metav1.UpdateOptions{}); err != nil {
		return flipResult{}, fmt.Errorf("flip: %w", err)
	}
	api := time.Since(at)
	m, err := e.metrics.waitFor(ctx, timeout, "the flipped endpoint in berth's rules", func(m proxyMetrics) bool {
		return m.programming.count > before.programming.count
	})
	if err != nil {
		return flipResult{}, err
	}
	full, partial := m.full.since(before.full), m.partial.since(before.partial)
	res := flipResult{
		latency:     m.lastSync.Sub(at),
		programming: seconds(m.programming.since(before.programming).mean()),
		api:         api,
		sync:        seconds((full.sum + partial.sum) / float64(max(full.count+partial.count, 1))),
		bytes:       m.bytes.since(before.bytes).mean(),
		fullSyncs:   full.count, partialSyncs: partial.count,
		busy: !quiet,
	}
	chain := r.payload.serviceChains[fmt.Sprintf("%s/%s:%s", ns, serviceName(i), portName)]
	out, err := bed.Output(ctx, e.node, "iptables", "-t", "nat", "-S", chain)
	if err != nil {
		return res, err
	}
	if want := flipIP(f).String() + ":" + strconv.Itoa(targetPort); !strings.Contains(string(out), want) {
		return res, fmt.Errorf("berth synced the flip, but %s does not send to %s:\n%s", chain, want, out)
	}
	return res, nil
}

// waitQuiet waits until berth has been idle for a second (no iptables
// binary running, under 20% of a core, its last sync over 1.5 s ago), so
// that a change gets a sync of its own at once rather than wait for one
// in progress or the minimum sync interval. It returns false if berth did
// not settle within timeout.
func (e *env) waitQuiet(ctx context.Context, pid int, timeout time.Duration) (bool, error) {
	const tick, calmTicks = 100 * time.Millisecond, 10
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	prev, err := readCPU(pid)
	if err != nil {
		return false, err
	}
	calm := 0
	err = poll(ctx, tick, func() (bool, error) {
		cur, err := readCPU(pid)
		if err != nil {
			return false, err
		}
		busy, err := hasChildren(pid)
		if err != nil {
			return false, err
		}
		m, err := e.metrics.scrape(ctx)
		if err != nil {
			return false, err
		}
		quiet := !busy && cur.own-prev.own <= tick/5 && time.Since(m.lastSync) > 1500*time.Millisecond
		prev = cur
		if quiet {
			calm++
		} else {
			calm = 0
		}
		return calm >= calmTicks, nil
	})
	if err != nil && ctx.Err() != nil {
		return false, nil // not settled in time: the caller goes ahead
	}
	return err == nil, err
}

// remove deletes namespace ns and its objects and waits until berth has
// removed their rules; it returns the time from the first deletion to the
// end of that sync.
func (e *env) remove(ctx context.Context, ns string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := deleteObjects(ctx, e.client, ns, timeout); err != nil {
		return 0, err
	}
	c, err := fetchCluster(ctx, e.client, e.node)
	if err != nil {
		return 0, err
	}
	want, err := c.rules(e.view)
	if err != nil {
		return 0, err
	}
	m, err := e.metrics.waitFor(ctx, timeout, "the deleted services' rules removed", func(m proxyMetrics) bool { return m.rules == want })
	if err != nil {
		return 0, err
	}
	return m.lastSync.Sub(start), nil
}

// incremental creates n services in ns while berth runs and waits until
// berth holds all their rules.
func (e *env) incremental(ctx context.Context, ns string, n, pid int, timeout time.Duration) (incrResult, error) {
	if _, err := e.waitQuiet(ctx, pid, 2*fullSyncGuess(n)+30*time.Second); err != nil {
		return incrResult{}, err
	}
	before, err := e.metrics.scrape(ctx)
	if err != nil {
		return incrResult{}, err
	}
	cpuBefore, err := readCPU(pid)
	if err != nil {
		return incrResult{}, err
	}
	sampler := testbed.SampleRSS(ctx, pid, 100*time.Millisecond)
	start := time.Now()
	last, err := createObjects(ctx, e.client, ns, n)
	if err != nil {
		sampler()
		return incrResult{}, err
	}
	c, err := fetchCluster(ctx, e.client, e.node)
	if err != nil {
		sampler()
		return incrResult{}, err
	}
	want, err := c.rules(e.view)
	if err != nil {
		sampler()
		return incrResult{}, err
	}
	m, err := e.metrics.waitFor(ctx, timeout, "rules of services created while berth runs", func(m proxyMetrics) bool { return m.rules >= want })
	peak := sampler()
	if err != nil {
		return incrResult{}, err
	}
	cpu, err := readCPU(pid)
	if err != nil {
		return incrResult{}, err
	}
	return incrResult{
		create: last.Sub(start), latency: m.lastSync.Sub(last),
		fullSyncs: m.full.since(before.full).count, partialSyncs: m.partial.since(before.partial).count,
		cpu: cpu.since(cpuBefore), peakRSS: peak,
	}, nil
}

// seconds converts a metric's seconds to a duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
