package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berthnode/berth/cri"
)

// stopGrace is how long processes get between SIGTERM and SIGKILL at Down.
const stopGrace = 10 * time.Second

// Process is a long-running program the bed started on one of its hosts.
type Process struct {
	// Host is where it runs.
	Host string
	// Name names it in logs, e.g. "kube-apiserver".
	Name string
	// PID is the process ID, outside the host (hosts share the PID space).
	PID int
	// Log is the file that receives its stdout and stderr.
	Log string
}

// LogDir returns the folder that holds the logs of every component.
func (tb *Testbed) LogDir() string { return filepath.Join(tb.runDir(), "logs") }

// Start starts args on host, detached from the calling process (its own
// session, not its child for long: it outlives `testbed up`), with stdout
// and stderr appended to LogDir()/HOST-NAME.log. Down stops it.
func (tb *Testbed) Start(host, name string, args ...string) (*Process, error) {
	logPath := filepath.Join(tb.LogDir(), host+"-"+name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s on %s: %w", name, host, err)
	}
	defer logFile.Close()
	// Not CommandContext: the process must outlive any context of ours.
	cmd := exec.Command("/bin/sh", tb.wrap(host, args)...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = hostEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s on %s: %w", name, host, err)
	}
	p := &Process{Host: host, Name: name, PID: cmd.Process.Pid, Log: logPath}
	// Reap it if it exits while we run; Down finds it by cgroup otherwise.
	go func() { _ = cmd.Wait() }()
	return p, nil
}

// Run runs args on host to completion, with its output appended to
// LogDir()/HOST-NAME.log; a failure's error quotes the end of the output.
func (tb *Testbed) Run(ctx context.Context, host, name string, args ...string) error {
	logPath := filepath.Join(tb.LogDir(), host+"-"+name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("run %s on %s: %w", name, host, err)
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "### %s %v\n", time.Now().Format(time.RFC3339), args)
	tail := &tailBuffer{max: 4096}
	cmd := tb.Command(ctx, host, args...)
	cmd.Env = hostEnv()
	cmd.Stdout = multiWriter(logFile, tail)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run %v on %s: %w (log %s): %s", args, host, err, logPath, tail.String())
	}
	return nil
}

// Output runs args on host and returns its stdout; stderr goes into the
// error when it fails.
func (tb *Testbed) Output(ctx context.Context, host string, args ...string) ([]byte, error) {
	cmd := tb.Command(ctx, host, args...)
	cmd.Env = hostEnv()
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return out, fmt.Errorf("run %v on %s: %w: %s", args, host, err, stderr)
	}
	return out, nil
}

// hostEnv is the environment of programs run on hosts: only what a shell on
// a fresh host would have, so nothing of the caller's leaks in.
func hostEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"LANG=C.UTF-8",
	}
}

// FindProcesses returns the processes running on host whose command name
// (/proc/PID/comm) is comm, e.g. "containerd" or "kubelet" for berth
// started as kubelet. Container processes are not on the host's list.
func (tb *Testbed) FindProcesses(host, comm string) ([]int, error) {
	cg := filepath.Join(trackingHierarchy(), cgroupParent(tb.cfg.Name, host), "cgroup.procs")
	data, err := os.ReadFile(cg)
	if err != nil {
		return nil, fmt.Errorf("processes of %s: %w", host, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		name, err := os.ReadFile(filepath.Join("/proc", f, "comm"))
		if err == nil && strings.TrimSpace(string(name)) == comm {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// StopProcesses sends sig to the processes named comm on host and waits
// (up to timeout) until they are gone.
func (tb *Testbed) StopProcesses(host, comm string, sig syscall.Signal, timeout time.Duration) error {
	pids, err := tb.FindProcesses(host, comm)
	if err != nil {
		return err
	}
	if len(pids) == 0 {
		return fmt.Errorf("no %s running on %s", comm, host)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
	deadline := time.Now().Add(timeout)
	for attempt := 0; ; attempt++ {
		left, err := tb.FindProcesses(host, comm)
		if err != nil {
			return err
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s on %s (pids %v) still running %s after signal %v", comm, host, left, timeout, sig)
		}
		time.Sleep(pollInterval(attempt))
	}
}

// StartContainerd starts containerd on node (again, after StopProcesses)
// with the configuration the bed wrote, and waits until it answers CRI
// Version.
func (tb *Testbed) StartContainerd(ctx context.Context, node string) error {
	if _, err := tb.Start(node, "containerd", "containerd", "--config", containerdConfigPath); err != nil {
		return err
	}
	sock, err := tb.HostPath(node, containerdSocket)
	if err != nil {
		return err
	}
	client, err := cri.Dial(sock)
	if err != nil {
		return err
	}
	defer client.Close()
	if _, err := client.WaitVersion(ctx, time.Minute); err != nil {
		return fmt.Errorf("node %s: containerd (log %s/%s-containerd.log): %w", node, tb.LogDir(), node, err)
	}
	return nil
}
