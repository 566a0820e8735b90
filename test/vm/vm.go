package vm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/berthnode/berth/test/vm/agent"
)

// Errors of a VM's operations, to be compared with errors.Is.
var (
	// ErrNotRunning is returned once qemu has exited or the VM was closed.
	ErrNotRunning = errors.New("VM not running")
	// ErrAgent is returned when the guest agent could not carry out a
	// request (a command that could not start or outlived its context, a
	// file that could not be read), as opposed to a command that ran and
	// exited non-zero.
	ErrAgent = errors.New("guest agent")
)

const (
	// stopGrace bounds each step of stopping qemu: SIGTERM, then SIGKILL.
	stopGrace = 10 * time.Second
	// pingTimeout bounds one ping while waiting for the agent.
	pingTimeout = 3 * time.Second
	// rebootRequestTimeout bounds asking the guest to reboot.
	rebootRequestTimeout = 30 * time.Second
	// progressEvery paces the progress messages of a boot.
	progressEvery = 15 * time.Second
)

// VM is a qemu guest booted from an Image, with its disk overlay, seed, tap
// and agent connection. Its methods are safe for concurrent use.
type VM struct {
	cfg        Config
	dir        string
	serialLog  string
	qemu       *exec.Cmd
	exited     chan struct{}
	exitErr    error
	tapCreated bool
	agent      *agentClient

	mu       sync.Mutex
	bootID   string
	xferSeq  uint64
	closed   bool
	closeErr error
}

// Boot starts a VM from img as cfg says and waits until its agent answers
// (bounded by cfg.BootTimeout). It creates the tap "vm-NAME" in cfg.NetNS,
// plugs it into cfg.Bridge and runs qemu in that namespace, so that all of
// the VM's traffic stays there. The VM writes to a copy-on-write overlay of
// img's disk in a folder of its own under cfg.WorkDir. Close releases it
// all; Boot does too when it fails.
func Boot(ctx context.Context, img *Image, cfg Config) (_ *VM, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vm %s: %w", cfg.Name, err)
	}
	cfg = cfg.withDefaults()
	start := cfg.Clock.Now()
	logger := klog.FromContext(ctx).WithValues("vm", cfg.Name)
	ctx = klog.NewContext(ctx, logger)
	for _, d := range []string{cfg.WorkDir, cfg.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("vm %s: %w", cfg.Name, err)
		}
	}
	dir, err := os.MkdirTemp(cfg.WorkDir, "vm-"+cfg.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("vm %s: %w", cfg.Name, err)
	}
	v := &VM{
		cfg:       cfg,
		dir:       dir,
		serialLog: filepath.Join(cfg.LogDir, cfg.Name+".serial.log"),
		exited:    make(chan struct{}),
		agent:     newAgentClient(filepath.Join(dir, "agent.sock")),
	}
	defer func() {
		if err != nil {
			if cerr := v.Close(); cerr != nil {
				logger.Error(cerr, "Cleaning up after a failed boot")
			}
			err = fmt.Errorf("vm %s: %w", cfg.Name, err)
		}
	}()
	if err := v.prepare(ctx, img); err != nil {
		return nil, err
	}
	if err := createTap(cfg.NetNS, v.tap(), cfg.Bridge); err != nil {
		return nil, err
	}
	v.tapCreated = true
	if err := v.start(img); err != nil {
		return nil, err
	}
	logger.Info("Booting the VM", "address", cfg.Address, "console", v.serialLog)
	bootID, err := v.waitAgent(ctx, "")
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.bootID = bootID
	v.mu.Unlock()
	logger.Info("VM is up", "took", cfg.Clock.Since(start).Round(time.Second), "bootID", bootID)
	return v, nil
}

// prepare writes the VM's seed and disk overlay.
func (v *VM) prepare(ctx context.Context, img *Image) error {
	if _, err := os.Stat(img.Disk); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	agentPath := v.cfg.AgentPath
	if agentPath == "" {
		var err error
		if agentPath, err = BuildAgent(ctx, v.dir); err != nil {
			return err
		}
	}
	if err := writeSeed(v.seedDir(), agentPath, seedFileSet(v.cfg)); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2",
		"-b", img.Disk, "-F", "raw", filepath.Join(v.dir, "disk.qcow2")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("create the disk overlay: %w: %s", err, out)
	}
	return nil
}

// start starts qemu in the VM's network namespace. qemu outlives the
// context of Boot; it dies with the test process (Pdeathsig).
func (v *VM) start(img *Image) error {
	p := qemuParams{
		name:        v.cfg.Name,
		kernel:      img.Kernel,
		initrd:      img.Initrd,
		cmdline:     kernelCmdline(v.cfg.Name),
		disk:        filepath.Join(v.dir, "disk.qcow2"),
		seedDir:     v.seedDir(),
		agentSocket: v.agent.socket,
		serialLog:   v.serialLog,
		tap:         v.tap(),
		mac:         macFor(v.cfg.Address.Addr()),
		memoryMiB:   v.cfg.MemoryMiB,
		cpus:        v.cfg.CPUs,
	}
	logPath := filepath.Join(v.cfg.LogDir, v.cfg.Name+".qemu.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := append([]string{"--net=" + v.cfg.NetNS, "--", qemuBinary}, qemuArgs(p)...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the OS thread that started qemu ends, not the
	// process, and Go ends threads (one a goroutine left locked, as the
	// test bed's network-namespace code does): start and wait for qemu on a
	// thread of its own that lives as long as qemu does.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			runtime.UnlockOSThread()
			started <- fmt.Errorf("start qemu: %w", err)
			return
		}
		started <- nil
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("qemu: %w (log: %s)\n%s", err, logPath, tailFile(logPath, 10))
		}
		v.exitErr = err
		close(v.exited)
		// The goroutine ends locked: its thread goes with it.
	}()
	if err := <-started; err != nil {
		return err
	}
	v.qemu = cmd
	return nil
}

// waitAgent pings the agent until one answers from a boot other than
// notBoot, and returns that boot's ID. It gives up when qemu exits or
// cfg.BootTimeout has passed, and says how far the boot got.
func (v *VM) waitAgent(ctx context.Context, notBoot string) (string, error) {
	logger := klog.FromContext(ctx)
	ctx, cancel := context.WithTimeout(ctx, v.cfg.BootTimeout)
	defer cancel()
	clk := v.cfg.Clock
	start := clk.Now()
	lastReport := start
	ticker := clk.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, pingTimeout)
		resp, err := v.agent.call(pctx, agent.Request{Op: agent.OpPing})
		pcancel()
		if err == nil && resp.BootID != notBoot {
			return resp.BootID, nil
		}
		if clk.Since(lastReport) >= progressEvery {
			lastReport = clk.Now()
			logger.Info("Waiting for the VM's agent", "elapsed", clk.Since(start).Round(time.Second), "console", lastLine(v.serialLog))
		}
		select {
		case <-v.exited:
			return "", fmt.Errorf("%w: %w", ErrNotRunning, v.exitErr)
		case <-ctx.Done():
			return "", fmt.Errorf("no answer from the VM's agent after %s: %w; the console (%s) ends with:\n%s",
				clk.Since(start).Round(time.Second), context.Cause(ctx), v.serialLog, tailFile(v.serialLog, 20))
		case <-ticker.C():
		}
	}
}

// call sends req to the agent, unless the VM is gone.
func (v *VM) call(ctx context.Context, req agent.Request) (agent.Response, error) {
	select {
	case <-v.exited:
		return agent.Response{}, ErrNotRunning
	default:
	}
	v.mu.Lock()
	closed := v.closed
	v.mu.Unlock()
	if closed {
		return agent.Response{}, ErrNotRunning
	}
	return v.agent.call(ctx, req)
}

// tap returns the name of the VM's tap device.
func (v *VM) tap() string { return "vm-" + v.cfg.Name }

// seedDir returns the folder shared with the guest as its seed.
func (v *VM) seedDir() string { return filepath.Join(v.dir, "seed") }

// Name returns the VM's name, which is also its host name.
func (v *VM) Name() string { return v.cfg.Name }

// Address returns the VM's address on the LAN.
func (v *VM) Address() netip.Addr { return v.cfg.Address.Addr() }

// SerialLog returns the path of the file that receives the VM's console.
func (v *VM) SerialLog() string { return v.serialLog }

// BootID returns the boot ID of the guest's current boot, as its agent
// last reported it.
func (v *VM) BootID() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.bootID
}

// Close stops the VM at once (SIGTERM to qemu, then SIGKILL, each bounded),
// removes its tap and its per-boot files. The console and qemu logs in
// cfg.LogDir stay. Calling Close again returns the first call's result.
func (v *VM) Close() error {
	v.mu.Lock()
	if v.closed {
		defer v.mu.Unlock()
		return v.closeErr
	}
	v.closed = true
	v.mu.Unlock()
	var errs []error
	if err := v.agent.close(); err != nil {
		klog.Background().V(2).Info("Closing the agent connection", "vm", v.cfg.Name, "err", err)
	}
	if v.qemu != nil {
		errs = append(errs, v.stopQemu())
	}
	if v.tapCreated {
		errs = append(errs, deleteTap(v.cfg.NetNS, v.tap()))
	}
	errs = append(errs, os.RemoveAll(v.dir))
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("vm %s: close: %w", v.cfg.Name, err)
	}
	v.mu.Lock()
	v.closeErr = err
	v.mu.Unlock()
	return err
}

// stopQemu ends the qemu process: SIGTERM (qemu stops the machine at once),
// then SIGKILL.
func (v *VM) stopQemu() error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		select {
		case <-v.exited:
			return nil
		default:
		}
		if err := v.qemu.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("signal qemu: %w", err)
		}
		select {
		case <-v.exited:
			return nil
		case <-v.cfg.Clock.After(stopGrace):
		}
	}
	return fmt.Errorf("qemu (pid %d) did not exit after SIGKILL", v.qemu.Process.Pid)
}
