package testbed

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupFS is where the cgroup hierarchies are mounted.
const cgroupFS = "/sys/fs/cgroup"

// cgroupPrefix is the parent of every bed's cgroups.
const cgroupPrefix = "berth-testbed"

// cgroupParent returns the cgroup (relative to a hierarchy's root) that holds
// everything running on host h of bed name, pods included.
func cgroupParent(name, h string) string {
	return "/" + path(cgroupPrefix, name, h)
}

func path(elem ...string) string { return strings.Join(elem, "/") }

// trackingHierarchy returns the mounted hierarchy the bed uses to find the
// processes of a host: the unified one on cgroup v2, the pids controller's on
// v1. Either way every process of a host, containers included, is in it.
func trackingHierarchy() string {
	if _, err := os.Stat(filepath.Join(cgroupFS, "cgroup.controllers")); err == nil {
		return cgroupFS
	}
	return filepath.Join(cgroupFS, "pids")
}

// cgroupProcs lists the processes in dir and every cgroup below it.
func cgroupProcs(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read procs of cgroup %s: %w", p, err)
		}
		for _, f := range strings.Fields(string(data)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("cgroup %s: bad pid %q", p, f)
			}
			pids = append(pids, pid)
		}
		return nil
	})
	return pids, err
}

// killCgroup stops every process in the cgroup tree dir: SIGTERM first, and
// SIGKILL for those still there after grace. It returns once the tree is
// empty, or an error naming the survivors.
func killCgroup(dir string, grace time.Duration) error {
	signal := syscall.SIGTERM
	deadline := time.Now().Add(grace)
	for attempt := 0; ; attempt++ {
		pids, err := cgroupProcs(dir)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if signal == syscall.SIGTERM && time.Now().After(deadline) {
			signal = syscall.SIGKILL
		}
		if signal == syscall.SIGKILL && time.Now().After(deadline.Add(10*time.Second)) {
			slices.Sort(pids)
			return fmt.Errorf("cgroup %s: processes %v survive SIGKILL", dir, pids)
		}
		for _, pid := range pids {
			// A process that exited since the read is not an error.
			_ = syscall.Kill(pid, signal)
		}
		time.Sleep(pollInterval(attempt))
	}
}

// removeCgroupTrees removes the cgroup rel (and everything below it) from
// every mounted hierarchy. The cgroups must be empty.
func removeCgroupTrees(rel string) error {
	hierarchies, err := os.ReadDir(cgroupFS)
	if err != nil {
		return fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	roots := []string{filepath.Join(cgroupFS, rel)}
	for _, h := range hierarchies {
		roots = append(roots, filepath.Join(cgroupFS, h.Name(), rel))
	}
	var errs []error
	for _, root := range roots {
		errs = append(errs, removeCgroupTree(root))
	}
	return errors.Join(errs...)
}

// removeCgroupTree removes the cgroup directories under root, deepest first
// (cgroup directories are removed with rmdir; their files cannot be deleted).
func removeCgroupTree(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk cgroup %s: %w", root, err)
	}
	for _, d := range slices.Backward(dirs) {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove cgroup %s: %w", d, err)
		}
	}
	return nil
}

// pollInterval backs off from 50ms to 1s.
func pollInterval(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt, 5)
	return min(d, time.Second)
}

// removeCgroupParent removes the parent of all beds' cgroups from every
// hierarchy where it is empty: other beds may still use it, and it goes with
// the last of them.
func removeCgroupParent() error {
	parents, err := filepath.Glob(filepath.Join(cgroupFS, "*", cgroupPrefix))
	if err != nil {
		return err
	}
	parents = append(parents, filepath.Join(cgroupFS, cgroupPrefix))
	var errs []error
	for _, p := range parents {
		err := syscall.Rmdir(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.ENOTEMPTY) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
