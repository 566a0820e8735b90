package stats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/clock"
)

// Defaults of Config.
const (
	DefaultCgroupRoot = "/sys/fs/cgroup"
	DefaultProcRoot   = "/proc"
)

// minRateWindow is the shortest time between two samples a CPU rate is
// computed over: scrapes that come closer get the last rate, so that two
// scrapers a millisecond apart do not see noise.
const minRateWindow = time.Second

// Config configures a Provider.
type Config struct {
	// Runtime is the CRI runtime service that runs the pods.
	Runtime internalapi.RuntimeService
	// Images, if set, tells the image filesystem's use (ImageFsInfo).
	Images internalapi.ImageManagerService
	// NodeName names the node in the summary.
	NodeName string
	// CgroupRoot is where the cgroup v2 hierarchy is mounted; empty means
	// DefaultCgroupRoot. Its root cgroup is the node's.
	CgroupRoot string
	// ProcRoot is where proc is mounted; empty means DefaultProcRoot.
	ProcRoot string
	// RootFS is a path on the node's filesystem (the kubelet's root
	// directory) whose filesystem the node's fs stats describe.
	RootFS string
	// Clock stamps node samples; nil means the real clock.
	Clock clock.PassiveClock
	// Volumes, if set, tells the statistics of the pods' volumes (CSI
	// volumes' NodeGetVolumeStats) for the full summary.
	Volumes VolumeSource
}

// Validate reports every problem of c.
func (c *Config) Validate() error {
	var errs []error
	if c.Runtime == nil {
		errs = append(errs, errors.New("runtime: required"))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name: required"))
	}
	if c.RootFS == "" {
		errs = append(errs, errors.New("root fs path: required"))
	}
	return errors.Join(errs...)
}

// Source is what the handlers serve: the full summary, and the CPU and
// memory part of it.
type Source interface {
	// Summary returns every statistic.
	Summary(ctx context.Context) (*statsapi.Summary, error)
	// CPUAndMemory returns only the node's, pods' and containers' CPU and
	// memory statistics.
	CPUAndMemory(ctx context.Context) (*statsapi.Summary, error)
}

// Provider gathers the statistics; it is a Source.
type Provider struct {
	cfg Config

	// mu serializes gatherings, so that rates see samples in order.
	mu    sync.Mutex
	rates rateCache
	// noSandboxStats remembers that the runtime does not implement
	// ListPodSandboxStats.
	noSandboxStats bool
}

var _ Source = (*Provider)(nil)

// NewProvider returns a Provider for cfg.
func NewProvider(cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("stats provider config: %w", err)
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = DefaultCgroupRoot
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Provider{cfg: cfg, rates: rateCache{}}, nil
}

// Summary returns every statistic: the node's CPU, memory, filesystems and
// process limits, the pods' and their containers' CPU, memory, network,
// process count and writable layers.
func (p *Provider) Summary(ctx context.Context) (*statsapi.Summary, error) {
	return p.gather(ctx, true)
}

// CPUAndMemory returns the node's, pods' and containers' CPU and memory
// statistics only (what /metrics/resource and only_cpu_and_memory serve).
func (p *Provider) CPUAndMemory(ctx context.Context) (*statsapi.Summary, error) {
	return p.gather(ctx, false)
}

func (p *Provider) gather(ctx context.Context, full bool) (*statsapi.Summary, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rates.startRound()
	node, err := p.nodeStats(ctx, full)
	if err != nil {
		return nil, err
	}
	pods, err := p.podStats(ctx, full)
	if err != nil {
		return nil, err
	}
	node.SystemContainers = p.systemContainers(pods)
	if full {
		p.addVolumes(ctx, pods)
	}
	p.rates.endRound()
	return &statsapi.Summary{Node: node, Pods: pods}, nil
}

// rateCache keeps the last cumulative CPU sample of each node, pod and
// container, to compute the next rate from.
type rateCache map[string]*cpuSample

type cpuSample struct {
	at    time.Time
	total uint64
	// rate is the last rate computed, nil until two samples were seen.
	rate *uint64
	// seen tells the sample's owner showed up in the current round.
	seen bool
}

func (c rateCache) startRound() {
	for _, s := range c {
		s.seen = false
	}
}

// endRound forgets whatever did not show up in the round: it is gone.
func (c rateCache) endRound() {
	for k, s := range c {
		if !s.seen {
			delete(c, k)
		}
	}
}

// nanoCores returns the CPU rate, in billionths of a core, of key since its
// last sample, given total CPU nanoseconds used at time at; nil while there
// is no earlier sample (or the counter went back: a new cgroup under an old
// name).
func (c rateCache) nanoCores(key string, at time.Time, total uint64) *uint64 {
	prev, ok := c[key]
	if !ok || total < prev.total {
		c[key] = &cpuSample{at: at, total: total, seen: true}
		return nil
	}
	prev.seen = true
	window := at.Sub(prev.at)
	if window < minRateWindow {
		return prev.rate
	}
	rate := uint64(float64(total-prev.total) / window.Seconds())
	prev.at, prev.total, prev.rate = at, total, &rate
	return ptr(rate)
}
