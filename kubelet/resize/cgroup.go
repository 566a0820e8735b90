package resize

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// CgroupFS reads and writes one pod cgroup's CPU and memory settings,
// under cgroup v1 (a hierarchy per controller) or v2 (one hierarchy).
type CgroupFS struct {
	// Mount is where the cgroup hierarchies are mounted (/sys/fs/cgroup).
	Mount string
	// Dir is the pod cgroup's path below each hierarchy.
	Dir string
	// V2 tells that Mount is a cgroup v2 hierarchy.
	V2 bool
}

// IsCgroupV2 tells whether the cgroup mount is the unified (v2) hierarchy;
// a hybrid host (v1 controllers, v2 at unified/) counts as v1.
func IsCgroupV2(mount string) bool {
	var st unix.Statfs_t
	return unix.Statfs(mount, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// v1 unlimited memory reads as the largest page-aligned int64; anything
// above this counts as no limit.
const v1NoLimit = int64(1) << 62

func (c CgroupFS) file(controller, name string) string {
	if c.V2 {
		return filepath.Join(c.Mount, c.Dir, name)
	}
	return filepath.Join(c.Mount, controller, c.Dir, name)
}

// Exists tells whether the pod cgroup is there (the runtime makes it with
// the pod's sandbox).
func (c CgroupFS) Exists() bool {
	_, err := os.Stat(c.file("memory", ""))
	return err == nil
}

// Read returns the pod cgroup's current settings.
func (c CgroupFS) Read() (PodCgroup, error) {
	if c.V2 {
		return c.readV2()
	}
	var out PodCgroup
	var errs []error
	read := func(controller, name string, dst *int64) {
		v, err := readInt(c.file(controller, name))
		errs = append(errs, err)
		*dst = v
	}
	read("cpu", "cpu.shares", &out.CPUShares)
	read("cpu", "cpu.cfs_quota_us", &out.CPUQuota)
	read("cpu", "cpu.cfs_period_us", &out.CPUPeriod)
	read("memory", "memory.limit_in_bytes", &out.MemoryLimit)
	if out.MemoryLimit >= v1NoLimit {
		out.MemoryLimit = Unlimited
	}
	return out, errors.Join(errs...)
}

func (c CgroupFS) readV2() (PodCgroup, error) {
	out := PodCgroup{CPUQuota: Unlimited, MemoryLimit: Unlimited}
	weight, err := readInt(c.file("", "cpu.weight"))
	if err != nil {
		return out, err
	}
	out.CPUShares = weightToShares(weight)
	cpuMax, err := readLimits(c.file("", "cpu.max"), 2)
	if err != nil {
		return out, err
	}
	out.CPUQuota, out.CPUPeriod = cpuMax[0], cpuMax[1]
	memMax, err := readLimits(c.file("", "memory.max"), 1)
	if err != nil {
		return out, err
	}
	out.MemoryLimit = memMax[0]
	return out, nil
}

// Apply writes the setting of op from want.
func (c CgroupFS) Apply(kind OpKind, want PodCgroup) error {
	switch kind {
	case OpPodMemory:
		if c.V2 {
			return write(c.file("", "memory.max"), limitString(want.MemoryLimit, "max"))
		}
		return write(c.file("memory", "memory.limit_in_bytes"), strconv.FormatInt(want.MemoryLimit, 10))
	case OpPodCPUQuota:
		if c.V2 {
			return write(c.file("", "cpu.max"), limitString(want.CPUQuota, "max")+" "+strconv.FormatInt(want.CPUPeriod, 10))
		}
		if want.CPUQuota != Unlimited {
			if err := write(c.file("cpu", "cpu.cfs_period_us"), strconv.FormatInt(want.CPUPeriod, 10)); err != nil {
				return err
			}
		}
		return write(c.file("cpu", "cpu.cfs_quota_us"), strconv.FormatInt(want.CPUQuota, 10))
	case OpPodCPUShares:
		if c.V2 {
			return write(c.file("", "cpu.weight"), strconv.FormatInt(sharesToWeight(want.CPUShares), 10))
		}
		return write(c.file("cpu", "cpu.shares"), strconv.FormatInt(want.CPUShares, 10))
	}
	return fmt.Errorf("not a pod cgroup change: %d", kind)
}

func limitString(v int64, none string) string {
	if v == Unlimited {
		return none
	}
	return strconv.FormatInt(v, 10)
}

// sharesToWeight maps cgroup v1 shares [2, 262144] onto v2 weights
// [1, 10000], as runc and the kubelet do.
func sharesToWeight(shares int64) int64 {
	if shares == 0 {
		return 0
	}
	return 1 + ((shares-minShares)*9999)/(maxShares-minShares)
}

// weightToShares is the inverse of sharesToWeight, rounded down.
func weightToShares(weight int64) int64 {
	return minShares + ((weight-1)*(maxShares-minShares))/9999
}

// readLimits reads a cgroup v2 file of n numbers where "max" stands for
// no limit (Unlimited).
func readLimits(path string, n int) ([]int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(string(data))
	if len(fields) != n {
		return nil, fmt.Errorf("read %s: %q has not %d fields", path, data, n)
	}
	out := make([]int64, n)
	for i, f := range fields {
		if f == "max" {
			out[i] = Unlimited
		} else if out[i], err = strconv.ParseInt(f, 10, 64); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	return out, nil
}

func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return v, nil
}

func write(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set %s to %s: %w", path, value, err)
	}
	return nil
}
