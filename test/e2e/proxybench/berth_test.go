package proxybench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berthnode/berth/test/testbed"
)

const (
	// berthArgv0 is how StartBerth starts berth: as kubeadm's kubelet.
	berthArgv0 = "/usr/local/bin/kubelet"
	// berthComm is its command name.
	berthComm = "kubelet"
	// userHZ is the unit of the CPU times in /proc/PID/stat.
	userHZ = 100
)

// cpuTimes are a process's CPU use since it started.
type cpuTimes struct {
	// own is the user and system time of its threads.
	own time.Duration
	// children is that of the children it has waited for: for berth, the
	// iptables binaries it ran.
	children time.Duration
}

func (c cpuTimes) total() time.Duration { return c.own + c.children }

func (c cpuTimes) since(earlier cpuTimes) cpuTimes {
	return cpuTimes{own: c.own - earlier.own, children: c.children - earlier.children}
}

// readCPU reads pid's CPU times from /proc.
func readCPU(pid int) (cpuTimes, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuTimes{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return parseStatCPU(string(stat))
}

// parseStatCPU reads utime, stime, cutime and cstime (fields 14 to 17) of
// a /proc/PID/stat line, counting from the end of the command name, which
// may hold spaces and parentheses.
func parseStatCPU(stat string) (cpuTimes, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return cpuTimes{}, fmt.Errorf("malformed stat %q", stat)
	}
	fields := strings.Fields(stat[i+1:])
	if len(fields) < 15 {
		return cpuTimes{}, fmt.Errorf("malformed stat %q", stat)
	}
	var ticks [4]int64
	for k := range ticks {
		n, err := strconv.ParseInt(fields[11+k], 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("stat CPU time %q: %w", fields[11+k], err)
		}
		ticks[k] = n
	}
	tick := time.Second / userHZ
	return cpuTimes{own: time.Duration(ticks[0]+ticks[1]) * tick, children: time.Duration(ticks[2]+ticks[3]) * tick}, nil
}

// hasChildren tells whether pid has a child process now (for berth: an
// iptables binary running).
func hasChildren(pid int) (bool, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		return false, err
	}
	if len(files) == 0 {
		return false, fmt.Errorf("process %d: no tasks", pid)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread ended since the glob
		}
		if err != nil {
			return false, err
		}
		if strings.TrimSpace(string(data)) != "" {
			return true, nil
		}
	}
	return false, nil
}

// stopBerth stops berth on node (SIGTERM, as systemd would) and waits
// until it is gone. The rules it programmed stay in the kernel.
func stopBerth(node string) error {
	return bed.StopProcesses(node, berthComm, syscall.SIGTERM, time.Minute)
}

// startBerth starts berth on node and returns its PID once it runs.
func startBerth(ctx context.Context, node string) (int, error) {
	if _, err := bed.StartBerth(node); err != nil {
		return 0, err
	}
	var pid int
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := poll(ctx, 10*time.Millisecond, func() (bool, error) {
		p, err := bed.FindProcess(node, berthArgv0)
		if errors.Is(err, testbed.ErrNoProcess) {
			return false, nil
		}
		pid = p
		return err == nil, err
	})
	if err != nil {
		return 0, fmt.Errorf("berth on %s: %w", node, err)
	}
	return pid, nil
}
