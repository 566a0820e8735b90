package stats

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupStats are the figures read from one cgroup v2 directory. A nil
// field was not there to read.
type cgroupStats struct {
	// cpuNanos is the CPU time used, in nanoseconds (cpu.stat usage_usec).
	cpuNanos *uint64
	// usage is memory.current.
	usage *uint64
	// limit is memory.max, nil when "max".
	limit *uint64
	// stat holds memory.stat's fields, nil without the file.
	stat map[string]uint64
}

// readCgroup reads the cgroup v2 directory dir. It fails only if dir does
// not exist; files it lacks leave their fields nil.
func readCgroup(dir string) (cgroupStats, error) {
	var cs cgroupStats
	if _, err := os.Stat(dir); err != nil {
		return cs, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	if kv, err := readFlatKeyed(filepath.Join(dir, "cpu.stat")); err == nil {
		if usec, ok := kv["usage_usec"]; ok {
			cs.cpuNanos = ptr(usec * uint64(time.Microsecond))
		}
	}
	if v, err := readUint(filepath.Join(dir, "memory.current")); err == nil {
		cs.usage = &v
	}
	if v, err := readUint(filepath.Join(dir, "memory.max")); err == nil {
		cs.limit = &v
	}
	if kv, err := readFlatKeyed(filepath.Join(dir, "memory.stat")); err == nil {
		cs.stat = kv
	}
	return cs, nil
}

// workingSet is usage less inactive file pages (they are reclaimed first),
// as cAdvisor and the kubelet count it.
func workingSet(usage uint64, stat map[string]uint64) uint64 {
	inactive := stat["inactive_file"]
	if inactive > usage {
		return 0
	}
	return usage - inactive
}

// readUint reads a file holding one unsigned number ("max" is an error).
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// readFlatKeyed reads a cgroup file of "key value" lines.
func readFlatKeyed(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// readMeminfo reads /proc/meminfo into bytes by field name.
func readMeminfo(procRoot string) (map[string]uint64, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "meminfo"))
	if err != nil {
		return nil, fmt.Errorf("read meminfo: %w", err)
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		out[k] = n
	}
	return out, nil
}

// userHZ is the unit of /proc/stat's CPU times, 100 on every Linux the
// kubelet runs on.
const userHZ = 100

// procStat is what /proc/stat tells: the CPU time used by all CPUs (busy
// time: everything but idle and iowait) and when the machine booted.
type procStat struct {
	cpuNanos uint64
	boot     time.Time
}

func readProcStat(procRoot string) (procStat, error) {
	var ps procStat
	b, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		return ps, fmt.Errorf("read /proc/stat: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		fields := strings.Fields(line)
		switch {
		case len(fields) > 8 && fields[0] == "cpu":
			// user nice system idle iowait irq softirq steal
			var ticks uint64
			for _, i := range []int{1, 2, 3, 6, 7, 8} {
				n, err := strconv.ParseUint(fields[i], 10, 64)
				if err != nil {
					return ps, fmt.Errorf("/proc/stat cpu line: %w", err)
				}
				ticks += n
			}
			ps.cpuNanos = ticks * uint64(time.Second/userHZ)
		case len(fields) == 2 && fields[0] == "btime":
			sec, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return ps, fmt.Errorf("/proc/stat btime: %w", err)
			}
			ps.boot = time.Unix(sec, 0)
		}
	}
	return ps, nil
}

// readRlimit returns the most tasks the kernel allows (the lower of pid_max
// and threads-max) and how many exist (from /proc/loadavg), as the kubelet
// reports them for PID pressure.
func readRlimit(procRoot string) (maxPID, procs *int64) {
	for _, name := range []string{"sys/kernel/pid_max", "sys/kernel/threads-max"} {
		if v, err := readUint(filepath.Join(procRoot, name)); err == nil {
			if n := int64(v); maxPID == nil || n < *maxPID {
				maxPID = &n
			}
		}
	}
	// "1.36 3.49 4.53 2/3518 3715089": the fourth field is running/total.
	if b, err := os.ReadFile(filepath.Join(procRoot, "loadavg")); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 4 {
			if _, total, ok := strings.Cut(f[3], "/"); ok {
				if n, err := strconv.ParseInt(total, 10, 64); err == nil {
					procs = &n
				}
			}
		}
	}
	return maxPID, procs
}

// fsUsage is a filesystem's size and use.
type fsUsage struct {
	capacity, available, used uint64
	inodes, inodesFree        uint64
}

// statFS returns the usage of the filesystem holding path.
func statFS(path string) (fsUsage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fsUsage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bsize := uint64(st.Bsize)
	return fsUsage{
		capacity:   st.Blocks * bsize,
		available:  st.Bavail * bsize,
		used:       (st.Blocks - st.Bfree) * bsize,
		inodes:     st.Files,
		inodesFree: st.Ffree,
	}, nil
}

// podCgroupDirs returns where the pod with uid may have its cgroup below
// the cgroup mount: under the cgroupfs driver's kubepods[/<qos>]/pod<uid>,
// or the systemd driver's slices (with the uid's dashes as underscores).
func podCgroupDirs(cgroupRoot, uid string) []string {
	u := strings.ReplaceAll(uid, "-", "_")
	return []string{
		filepath.Join(cgroupRoot, "kubepods", "pod"+uid),
		filepath.Join(cgroupRoot, "kubepods", "burstable", "pod"+uid),
		filepath.Join(cgroupRoot, "kubepods", "besteffort", "pod"+uid),
		filepath.Join(cgroupRoot, "kubepods.slice", "kubepods-pod"+u+".slice"),
		filepath.Join(cgroupRoot, "kubepods.slice", "kubepods-burstable.slice", "kubepods-burstable-pod"+u+".slice"),
		filepath.Join(cgroupRoot, "kubepods.slice", "kubepods-besteffort.slice", "kubepods-besteffort-pod"+u+".slice"),
	}
}

// podsCgroupDirs returns where the cgroup of all pods may be.
func podsCgroupDirs(cgroupRoot string) []string {
	return []string{filepath.Join(cgroupRoot, "kubepods"), filepath.Join(cgroupRoot, "kubepods.slice")}
}

// firstCgroup reads the first of dirs that exists.
func firstCgroup(dirs []string) (cgroupStats, bool) {
	for _, d := range dirs {
		if cs, err := readCgroup(d); err == nil {
			return cs, true
		}
	}
	return cgroupStats{}, false
}

func ptr[T any](v T) *T { return &v }
