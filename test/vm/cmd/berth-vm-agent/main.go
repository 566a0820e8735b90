// Command berth-vm-agent is the guest agent of a berth test VM (see package
// github.com/berthnode/berth/test/vm/agent): it serves the host's requests
// on the virtio-serial port agent.PortName. It is built statically
// (CGO_ENABLED=0), handed to the guest on every boot through the VM's seed,
// and run by the guest's berth-vm-agent.service, which restarts it whenever
// it exits, e.g. when the port's reading fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/berthnode/berth/test/vm/agent"
)

const (
	// portWait bounds the wait for the port device, which appears once the
	// virtio console driver has probed the port, early in the boot.
	portWait = 2 * time.Minute
	// idlePoll is how often the port is read again while the host side is
	// not connected (reads return end of file then).
	idlePoll = time.Second
)

func main() {
	klog.InitFlags(nil)
	port := flag.String("port", "", "the port device; empty means the virtio-serial port named "+agent.PortName)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, *port)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-vm-agent: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, port string) error {
	bootID, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return err
	}
	if port == "" {
		if port, err = findPort(ctx); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(port, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	klog.FromContext(ctx).Info("Serving", "port", port)
	s := &agent.Server{
		BootID: strings.TrimSpace(string(bootID)),
		Env:    []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"},
	}
	// Reading the port does not watch ctx: serve in the background and
	// return (ending the process) when ctx ends, e.g. on SIGTERM at
	// shutdown; systemd stops what the commands left running.
	done := make(chan error, 1)
	go func() { done <- serve(ctx, s, f) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return nil
	}
}

// serve serves the port until reading it fails for another reason than
// the host side not being connected.
func serve(ctx context.Context, s *agent.Server, port *os.File) error {
	logger := klog.FromContext(ctx)
	ticker := time.NewTicker(idlePoll)
	defer ticker.Stop()
	idle := false
	for {
		err := s.Serve(ctx, port)
		if !errors.Is(err, io.EOF) {
			return err
		}
		if !idle {
			logger.Info("The host side is not connected; waiting for it")
		}
		idle = true
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// findPort returns the device of the port named agent.PortName, waiting for
// it to appear. It reads sysfs rather than relying on udev's link.
func findPort(ctx context.Context) (string, error) {
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	deadline := time.After(portWait)
	for {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err == nil && strings.TrimSpace(string(b)) == agent.PortName {
				return filepath.Join("/dev", filepath.Base(filepath.Dir(n))), nil
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-deadline:
			return "", errors.New("no virtio-serial port named " + agent.PortName)
		case <-ticker.C:
		}
	}
}
