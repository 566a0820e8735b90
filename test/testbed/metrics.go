package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: Linux fixes it at
// 100 ticks a second for user space, whatever the kernel's own HZ.
const userHZ = 100

// ErrNoProcess is returned by FindProcess when no process matches.
var ErrNoProcess = errors.New("no such process")

// ProcessStats is a process's resource use, as /proc shows it.
type ProcessStats struct {
	// CPU is the user plus system time all its threads have used.
	CPU time.Duration
	// ChildCPU is the user plus system time of its children that have
	// exited and been waited for (the CNI plugins containerd runs, the
	// runc runs of a shim).
	ChildCPU time.Duration
	// RSS is its resident set size (VmRSS), in bytes.
	RSS uint64
	// AnonRSS is the part of RSS that is anonymous memory (RssAnon): the
	// heap and stacks, without the mapped executable and files.
	AnonRSS uint64
	// PeakRSS is the highest RSS it has had (VmHWM), in bytes.
	PeakRSS uint64
}

// ReadProcessStats reads pid's CPU time and resident memory from /proc.
func ReadProcessStats(pid int) (ProcessStats, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcessStats{}, fmt.Errorf("process %d: %w", pid, err)
	}
	cpu, child, err := parseStatCPU(string(stat))
	if err != nil {
		return ProcessStats{}, fmt.Errorf("process %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcessStats{}, fmt.Errorf("process %d: %w", pid, err)
	}
	rss, err := statusKB(string(status), "VmRSS")
	if err != nil {
		return ProcessStats{}, fmt.Errorf("process %d: %w", pid, err)
	}
	anon, err := statusKB(string(status), "RssAnon")
	if err != nil {
		return ProcessStats{}, fmt.Errorf("process %d: %w", pid, err)
	}
	peak, err := statusKB(string(status), "VmHWM")
	if err != nil {
		return ProcessStats{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return ProcessStats{CPU: cpu, ChildCPU: child, RSS: rss << 10, AnonRSS: anon << 10, PeakRSS: peak << 10}, nil
}

// parseStatCPU returns utime + stime and cutime + cstime of a
// /proc/PID/stat line. The command name (field 2) is in parentheses and may
// hold spaces and parentheses, so the fields are counted from the last ')'.
func parseStatCPU(stat string) (own, children time.Duration, err error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed stat %q", stat)
	}
	// After the name: state (field 3) ... utime (14), stime (15), cutime
	// (16), cstime (17).
	fields := strings.Fields(stat[i+1:])
	if len(fields) < 15 {
		return 0, 0, fmt.Errorf("malformed stat %q", stat)
	}
	var ticks [2]uint64
	for j, f := range fields[11:15] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("stat CPU time %q: %w", f, err)
		}
		ticks[j/2] += n
	}
	return time.Duration(ticks[0]) * time.Second / userHZ, time.Duration(ticks[1]) * time.Second / userHZ, nil
}

// statusKB returns the kB value of a "Key:   123 kB" line of
// /proc/PID/status.
func statusKB(status, key string) (uint64, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("malformed status line %q", strings.TrimSpace(line))
		}
		return strconv.ParseUint(f[0], 10, 64)
	}
	return 0, fmt.Errorf("no %s in status", key)
}

// FindProcess returns the PID of the process that runs directly on host
// (not in one of its containers) with argv0 as its first argument, e.g.
// "/usr/local/bin/kubelet" for the node agent StartBerth started.
func (tb *Testbed) FindProcess(host, argv0 string) (int, error) {
	procs := filepath.Join(trackingHierarchy(), cgroupParent(tb.cfg.Name, host), "cgroup.procs")
	data, err := os.ReadFile(procs)
	if err != nil {
		return 0, fmt.Errorf("processes of %s: %w", host, err)
	}
	var found []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return 0, fmt.Errorf("cgroup %s: bad pid %q", procs, f)
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue // exited since the read
		}
		if first, _, _ := strings.Cut(string(cmdline), "\x00"); first == argv0 {
			found = append(found, pid)
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("%s on %s: %w", argv0, host, ErrNoProcess)
	case 1:
		return found[0], nil
	default:
		return 0, fmt.Errorf("%s on %s: %d processes %v, want one", argv0, host, len(found), found)
	}
}

// ProcessUse is a process's use of the machine over a window.
type ProcessUse struct {
	// CPUPercent is the CPU time it used as a share of the window, in
	// percent of one core.
	CPUPercent float64
	// End is its stats at the end of the window.
	End ProcessStats
}

// MeasureProcess watches pid for window (or until ctx ends, an error) and
// returns its CPU use over it.
func MeasureProcess(ctx context.Context, pid int, window time.Duration) (ProcessUse, error) {
	before, err := ReadProcessStats(pid)
	if err != nil {
		return ProcessUse{}, err
	}
	start := time.Now()
	timer := time.NewTimer(window)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ProcessUse{}, ctx.Err()
	case <-timer.C:
	}
	after, err := ReadProcessStats(pid)
	if err != nil {
		return ProcessUse{}, err
	}
	share := float64(after.CPU-before.CPU) / float64(time.Since(start)) * 100
	return ProcessUse{CPUPercent: share, End: after}, nil
}

// SampleRSS samples pid's RSS every interval until the returned function is
// called, which returns the highest sample (0 if none could be read).
func SampleRSS(ctx context.Context, pid int, interval time.Duration) (stop func() uint64) {
	return SamplePeak(ctx, interval, func() (uint64, error) {
		s, err := ReadProcessStats(pid)
		return s.RSS, err
	})
}

// SamplePeak calls read every interval until the returned function is
// called, which returns the highest value read (0 if no read succeeded).
func SamplePeak(ctx context.Context, interval time.Duration, read func() (uint64, error)) (stop func() uint64) {
	ctx, cancel := context.WithCancel(ctx)
	var peak uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			if v, err := read(); err == nil {
				peak = max(peak, v)
			}
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
	return func() uint64 {
		cancel()
		<-done
		return peak
	}
}

// machineTimes reads the machine's busy and total CPU time from /proc/stat,
// in clock ticks.
func machineTimes() (busy, total uint64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, f := range fields[1:] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

// WaitIdle waits until the machine's CPUs are at most maxBusy (0 to 1)
// busy over a second, so that a measurement does not pay for what the one
// before it left behind (the kernel freeing cgroups and files of removed
// containers, the API server's garbage). It gives up after timeout and
// returns the last second's share either way.
func WaitIdle(ctx context.Context, maxBusy float64, timeout time.Duration) (float64, error) {
	deadline := time.Now().Add(timeout)
	busy0, total0, err := machineTimes()
	if err != nil {
		return 0, err
	}
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
		busy, total, err := machineTimes()
		if err != nil {
			return 0, err
		}
		share := 0.0
		if total > total0 {
			share = float64(busy-busy0) / float64(total-total0)
		}
		if share <= maxBusy || time.Now().After(deadline) {
			return share, nil
		}
		busy0, total0 = busy, total
	}
}

// MachineBusy returns the CPU time all CPUs of the machine have been busy
// since boot (every process, the kernel and interrupts; not idle or
// waiting for I/O): the difference of two readings is what a period cost
// the whole machine.
func MachineBusy() (time.Duration, error) {
	busy, _, err := machineTimes()
	// /proc/stat counts in USER_HZ ticks, 100 a second on Linux.
	return time.Duration(busy) * 10 * time.Millisecond, err
}
