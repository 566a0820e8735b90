package testbed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// ErrNotRoot is returned by Up when the caller is not root: the bed creates
// namespaces, mounts and cgroups.
var ErrNotRoot = errors.New("the test bed needs root (namespaces, mounts, cgroups)")

// Testbed is a running (or partly built) test bed.
type Testbed struct {
	cfg      Config
	state    *State
	keepLogs bool
}

func (tb *Testbed) runDir() string { return filepath.Join(tb.cfg.Root, tb.cfg.Name) }

// Name returns the bed's name.
func (tb *Testbed) Name() string { return tb.cfg.Name }

// Token returns the bootstrap token nodes join with.
func (tb *Testbed) Token() string { return tb.state.Token }

// ControlPlaneEndpoint returns the apiserver's address on the LAN.
func (tb *Testbed) ControlPlaneEndpoint() string { return controlPlaneIP.String() + ":6443" }

// KeepLogs makes Down leave the logs folder (and only it) behind, for a
// failed test run.
func (tb *Testbed) KeepLogs() { tb.keepLogs = true }

// Up builds the bed cfg describes: it first removes a previous bed of the
// same name and any bed whose owner died, then creates the LAN, the hosts,
// the control plane and each node's containerd. When Up fails after it began
// building, it returns the partial bed with the error: Down removes it.
func Up(ctx context.Context, cfg Config) (*Testbed, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("test bed config: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if err := sweep(ctx, cfg.Root, cfg.Name); err != nil {
		return nil, err
	}
	tb := &Testbed{cfg: cfg, state: &State{Name: cfg.Name, RunDir: filepath.Join(cfg.Root, cfg.Name), UpstreamDir: cfg.UpstreamDir}}
	// What is left is at most the logs of a failed run of the same name.
	if err := os.RemoveAll(tb.runDir()); err != nil {
		return nil, fmt.Errorf("clear run folder: %w", err)
	}
	if cfg.Owned {
		tb.state.OwnerPID = os.Getpid()
		start, err := processStart(tb.state.OwnerPID)
		if err != nil {
			return nil, fmt.Errorf("own test bed: %w", err)
		}
		tb.state.OwnerStart = start
	}
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	tb.state.Token = token
	if err := tb.build(ctx); err != nil {
		return tb, err
	}
	return tb, nil
}

// build does Up's work once the run folder is free.
func (tb *Testbed) build(ctx context.Context) error {
	for _, d := range []string{tb.LogDir(), filepath.Join(tb.runDir(), "ns"), filepath.Join(tb.runDir(), "hosts")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create run folder: %w", err)
		}
	}
	if err := writeState(tb.state); err != nil {
		return err
	}
	// Namespace files can only be pinned on a mount that does not
	// propagate: make the ns folder a private mount of its own.
	nsDir := filepath.Join(tb.runDir(), "ns")
	if err := unix.Mount(nsDir, nsDir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", nsDir, err)
	}
	if err := unix.Mount("", nsDir, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", nsDir, err)
	}
	if err := tb.createHost(ctx, HostState{Name: lanHost}); err != nil {
		return err
	}
	if err := tb.setupLAN(); err != nil {
		return err
	}
	hosts := []HostState{{Name: ControlPlaneHost, IP: controlPlaneIP.String(), Mounts: true}}
	for i := 1; i <= tb.cfg.Nodes; i++ {
		hosts = append(hosts, HostState{Name: NodeName(i), IP: nodeIP(i).String(), Mounts: true})
	}
	for _, h := range hosts {
		if err := tb.createHost(ctx, h); err != nil {
			return err
		}
		ip, _ := netipParse(h.IP) // recorded from a netip.Addr
		if err := tb.connectHost(h.Name, ip); err != nil {
			return err
		}
	}
	for _, n := range hosts[1:] {
		if err := tb.startContainerd(ctx, n.Name); err != nil {
			return err
		}
	}
	return tb.startControlPlane(ctx)
}

// Open returns the bed recorded in root under name, to run commands on it or
// take it down.
func Open(root, name string) (*Testbed, error) {
	s, err := readState(filepath.Join(root, name))
	if err != nil {
		return nil, fmt.Errorf("open test bed %s: %w", name, err)
	}
	cfg := Config{Name: s.Name, Root: root, UpstreamDir: s.UpstreamDir}
	for _, h := range s.Hosts {
		if h.Name != lanHost && h.Name != ControlPlaneHost {
			cfg.Nodes++
		}
	}
	return &Testbed{cfg: cfg, state: s}, nil
}

// Down stops every process of the bed, removes its namespaces, mounts and
// cgroups, and deletes its run folder (but the logs, after KeepLogs). It
// goes on past errors, so that as much as possible is removed, and reports
// them all.
func (tb *Testbed) Down(ctx context.Context) error {
	klog.FromContext(ctx).Info("Taking test bed down", "name", tb.cfg.Name, "runDir", tb.runDir())
	var errs []error
	for i := len(tb.state.Hosts) - 1; i >= 0; i-- {
		errs = append(errs, tb.removeHost(tb.state.Hosts[i]))
	}
	nsDir := filepath.Join(tb.runDir(), "ns")
	if err := unix.Unmount(nsDir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("unmount %s: %w", nsDir, err))
	}
	errs = append(errs, removeCgroupTrees(path(cgroupPrefix, tb.cfg.Name)))
	errs = append(errs, removeCgroupParent())
	if err := errors.Join(errs...); err != nil {
		// Removing files below a mount that survived would delete a
		// host's data through it: keep the folder for a later Down.
		return fmt.Errorf("take test bed %s down: %w", tb.cfg.Name, err)
	}
	if err := tb.removeRunDir(); err != nil {
		return fmt.Errorf("take test bed %s down: %w", tb.cfg.Name, err)
	}
	return nil
}

// removeRunDir deletes the run folder, or all of it but the logs.
func (tb *Testbed) removeRunDir() error {
	if !tb.keepLogs {
		return os.RemoveAll(tb.runDir())
	}
	entries, err := os.ReadDir(tb.runDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == "logs" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(tb.runDir(), e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// sweep takes down the bed called name, if one is recorded, and every bed
// whose owner is gone, so that a crash never breaks the next run.
func sweep(ctx context.Context, root, name string) error {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list test beds: %w", err)
	}
	for _, e := range entries {
		s, err := readState(filepath.Join(root, e.Name()))
		if err != nil {
			continue // a logs-only folder of a failed run, or not ours
		}
		if s.Name != name && !s.abandoned() {
			continue
		}
		tb, err := Open(root, s.Name)
		if err != nil {
			return err
		}
		if err := tb.Down(ctx); err != nil {
			return fmt.Errorf("remove stale test bed: %w", err)
		}
	}
	return nil
}

// RunDir returns the bed's run folder.
func (tb *Testbed) RunDir() string { return tb.runDir() }

// PIDs lists every process running on the bed's hosts, containers included.
func (tb *Testbed) PIDs() ([]int, error) {
	return cgroupProcs(filepath.Join(trackingHierarchy(), cgroupPrefix, tb.cfg.Name))
}
