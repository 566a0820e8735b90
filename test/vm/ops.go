package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/berthnode/berth/test/vm/agent"
)

// Run runs cmd with /bin/sh -c in the guest, as root, with / as working
// directory, and returns its output and exit code. A command that ran and
// exited non-zero is not an error; err is set when it could not run to its
// end: the VM is gone (ErrNotRunning), the agent could not start it or
// killed it when ctx's deadline passed (ErrAgent), or ctx ended first. Output
// beyond 16 MiB per stream is cut off (ErrAgent).
func (v *VM) Run(ctx context.Context, cmd string) (stdout, stderr []byte, exitCode int, err error) {
	req := agent.Request{Op: agent.OpExec, Command: cmd}
	if deadline, ok := ctx.Deadline(); ok {
		// The agent stops the command when the caller stops waiting.
		req.TimeoutMillis = max(1, time.Until(deadline).Milliseconds())
	}
	resp, err := v.call(ctx, req)
	if err != nil {
		return nil, nil, -1, fmt.Errorf("vm %s: run %q: %w", v.cfg.Name, cmd, err)
	}
	if resp.Error != "" {
		return resp.Stdout, resp.Stderr, resp.ExitCode, fmt.Errorf("vm %s: run %q: %w: %s", v.cfg.Name, cmd, ErrAgent, resp.Error)
	}
	return resp.Stdout, resp.Stderr, resp.ExitCode, nil
}

// Output runs cmd like Run and returns its standard output; a non-zero
// exit is an error that carries the exit code and standard error.
func (v *VM) Output(ctx context.Context, cmd string) ([]byte, error) {
	stdout, stderr, code, err := v.Run(ctx, cmd)
	if err != nil {
		return stdout, err
	}
	if code != 0 {
		return stdout, fmt.Errorf("vm %s: %q exited with %d: %s", v.cfg.Name, cmd, code, bytes.TrimSpace(stderr))
	}
	return stdout, nil
}

// ReadFile returns the content of the guest file at path (32 MiB at most).
func (v *VM) ReadFile(ctx context.Context, path string) ([]byte, error) {
	resp, err := v.call(ctx, agent.Request{Op: agent.OpRead, Path: path})
	if err != nil {
		return nil, fmt.Errorf("vm %s: read %s: %w", v.cfg.Name, path, err)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("vm %s: %w: %s", v.cfg.Name, ErrAgent, resp.Error)
	}
	return resp.Data, nil
}

// WriteFile writes data to the guest file at path with permission bits
// perm, owned by root, creating missing parent folders. The data travels
// through the VM's seed share, so size is no concern.
func (v *VM) WriteFile(ctx context.Context, path string, data []byte, perm fs.FileMode) error {
	staged, err := v.stage(func(dst string) error { return writeFile(dst, data, perm) })
	if err != nil {
		return fmt.Errorf("vm %s: write %s: %w", v.cfg.Name, path, err)
	}
	defer os.Remove(staged)
	return v.install(ctx, staged, path, perm)
}

// CopyTo copies the host file hostPath to guestPath, with the host file's
// permission bits, owned by root, creating missing parent folders.
func (v *VM) CopyTo(ctx context.Context, hostPath, guestPath string) error {
	st, err := os.Stat(hostPath)
	if err != nil {
		return fmt.Errorf("vm %s: copy %s: %w", v.cfg.Name, hostPath, err)
	}
	staged, err := v.stage(func(dst string) error { return copyFile(hostPath, dst, st.Mode().Perm()) })
	if err != nil {
		return fmt.Errorf("vm %s: copy %s: %w", v.cfg.Name, hostPath, err)
	}
	defer os.Remove(staged)
	return v.install(ctx, staged, guestPath, st.Mode().Perm())
}

// stage writes a file into the seed's transfer folder with write and
// returns its host path.
func (v *VM) stage(write func(dst string) error) (string, error) {
	v.mu.Lock()
	v.xferSeq++
	name := strconv.FormatUint(v.xferSeq, 10)
	v.mu.Unlock()
	dst := filepath.Join(v.seedDir(), seedXfer, name)
	if err := write(dst); err != nil {
		os.Remove(dst)
		return "", err
	}
	return dst, nil
}

// install has the guest copy the staged file into place. The seed share
// is mounted late in the boot; starting its unit again is a no-op.
func (v *VM) install(ctx context.Context, staged, guestPath string, perm fs.FileMode) error {
	if !filepath.IsAbs(guestPath) {
		return fmt.Errorf("vm %s: guest path %q: must be absolute", v.cfg.Name, guestPath)
	}
	src := filepath.Join(guestSeed, seedXfer, filepath.Base(staged))
	cmd := fmt.Sprintf("systemctl start mnt-seed.mount && install -D -m %04o %s %s", perm.Perm(), shellQuote(src), shellQuote(guestPath))
	_, err := v.Output(ctx, cmd)
	return err
}

// Reboot reboots the guest (systemctl reboot) and waits, bounded by
// cfg.BootTimeout, until the agent answers from the new boot. The disk's
// overlay, and so everything written in the guest, stays.
func (v *VM) Reboot(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("vm", v.cfg.Name)
	ctx = klog.NewContext(ctx, logger)
	old := v.BootID()
	start := v.cfg.Clock.Now()
	rctx, cancel := context.WithTimeout(ctx, rebootRequestTimeout)
	_, stderr, code, err := v.Run(rctx, "systemctl reboot")
	cancel()
	switch {
	case errors.Is(err, ErrNotRunning):
		return err
	case err != nil:
		// The agent may be stopped before its answer gets out.
		logger.V(2).Info("No answer to the reboot request", "err", err)
	case code != 0:
		return fmt.Errorf("vm %s: systemctl reboot exited with %d: %s", v.cfg.Name, code, bytes.TrimSpace(stderr))
	}
	logger.Info("Rebooting the VM")
	id, err := v.waitAgent(ctx, old)
	if err != nil {
		return fmt.Errorf("vm %s: reboot: %w", v.cfg.Name, err)
	}
	v.mu.Lock()
	v.bootID = id
	v.mu.Unlock()
	logger.Info("VM is up again", "took", v.cfg.Clock.Since(start).Round(time.Second), "bootID", id)
	return nil
}

// Shutdown powers the guest off (systemctl poweroff), waits for qemu to
// exit until ctx ends, and then closes the VM as Close does.
func (v *VM) Shutdown(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, rebootRequestTimeout)
	_, _, _, err := v.Run(rctx, "systemctl poweroff")
	cancel()
	if err != nil {
		klog.FromContext(ctx).V(2).Info("No answer to the poweroff request", "vm", v.cfg.Name, "err", err)
	}
	select {
	case <-v.exited:
	case <-ctx.Done():
	}
	return v.Close()
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ansiEscape matches the terminal control sequences systemd colours its
// console messages with.
var ansiEscape = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|[@-Z\\-_])`)

// lastLine returns the last non-empty line of the file at path, without
// terminal control sequences: how far the guest's boot got.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 4096
	if st, err := f.Stat(); err == nil && st.Size() > tail {
		if _, err := f.Seek(-tail, io.SeekEnd); err != nil {
			return ""
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	return lastLineOf(data)
}

// lastLineOf returns the last non-empty line of console output.
func lastLineOf(data []byte) string {
	lines := strings.Split(ansiEscape.ReplaceAllString(string(data), ""), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(strings.ReplaceAll(lines[i], "\r", "")); l != "" {
			return l
		}
	}
	return ""
}
