package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
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
