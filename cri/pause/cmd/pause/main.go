// Command pause is the first process of a berth pod sandbox. It reaps every
// child that exits (orphans of a shared PID namespace are re-parented to it),
// exits 0 on SIGINT or SIGTERM and otherwise blocks forever. It is built
// statically (CGO_ENABLED=0) so that the image needs no other file.
//
// Usage:
//
//	pause      run as a sandbox's PID 1
//	pause -v   print the version and exit
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// version is printed by -v; it matches the tag of berth's pause image.
const version = "3.10"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process exit, returning the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("pause", flag.ContinueOnError)
	flags.SetOutput(stderr)
	showVersion := flags.Bool("v", false, "print the version and exit")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "pause: unexpected arguments %q\n", flags.Args())
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "berth pause %s\n", version)
		return 0
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, unix.SIGCHLD, unix.SIGINT, unix.SIGTERM)
	if os.Getpid() != 1 {
		// Still useful for debugging, but orphans will not reach us. Printed
		// once signals are handled, so tests can wait for it.
		fmt.Fprintln(stderr, "pause: warning: not running as PID 1")
	}
	// Children may have exited before the handler was installed (a SIGCHLD
	// delivered then is lost), so sweep once before waiting.
	if err := reap(); err != nil {
		fmt.Fprintf(stderr, "pause: %v\n", err)
	}
	for sig := range signals {
		if sig != unix.SIGCHLD {
			return 0
		}
		// SIGCHLD is not queued: one signal may stand for many exits,
		// hence the loop inside reap.
		if err := reap(); err != nil {
			fmt.Fprintf(stderr, "pause: %v\n", err)
		}
	}
	return 0
}

// reap collects every child that has exited, without blocking.
func reap() error {
	for {
		var status unix.WaitStatus
		pid, err := unix.Wait4(-1, &status, unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			return nil
		case err != nil:
			return fmt.Errorf("wait4: %w", err)
		case pid <= 0:
			return nil // children remain, none has exited
		}
	}
}
