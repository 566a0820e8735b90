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
	"runtime/debug"
	"strings"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/berthnode/berth/systemd"
)

// Build metadata, stamped by the linker:
//
//	go build -ldflags "-X main.version=v0.1.0 -X main.commit=$(git rev-parse HEAD)" ./cmd/berth
//
// These are berth's only package-level variables, because -X can set
// nothing else. Nothing assigns them at run time.
var (
	// version is the berth release, main.version for -ldflags -X.
	version = "v0.0.0-dev"
	// commit is the source commit berth was built from, main.commit for
	// -ldflags -X.
	commit = "unknown"
)

// Process exit codes returned by run.
const (
	// exitOK means the command did what was asked.
	exitOK = 0
	// exitFailure means the node agent failed while running.
	exitFailure = 1
	// exitUsage means a bad command line or an invalid configuration: running
	// again unchanged cannot succeed.
	exitUsage = 2
)

// usage is the top-level help text.
const usage = `Usage: berth <command> [flags]

berth is a Kubernetes node agent for Linux workers: one daemon in place of
kubelet and kube-proxy.

Commands:
  run       Run the node agent with the configuration file given by --config
  join      Join a kubeadm cluster without kubeadm (token + CA hash, as kubeadm join)
  install   Install the binary, the systemd unit and a default configuration
  image     Load image tarballs into containerd (air-gapped nodes)
  rbac      Print the RBAC binding berth needs once per cluster
  rules     Explain the service rules berth programmed: rules explain NAMESPACE/SERVICE
  kubelet   Run as kubelet, with kubelet's flags (also: berth installed as "kubelet")
  version   Print version information

Run 'berth <command> -h' for the flags of a command.
`

// defaultGCPercent is berth's GOGC unless the environment sets one: the
// heap may grow to 1.5× what is live between collections instead of Go's
// 2×. A node agent's memory is taken from the node's pods; the CPU this
// costs is small, since berth is idle most of the time.
const defaultGCPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	// Under systemd, log lines carry their level for the journal.
	if _, err := systemd.LogToJournal(os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "berth: logging to the journal: %v\n", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Stop catching signals once the first one arrives, so a second SIGINT
	// kills a shutdown that hangs.
	context.AfterFunc(ctx, stop)
	args := os.Args[1:]
	// Installed as the kubelet binary (a symlink), berth is run as kubelet.
	if filepath.Base(os.Args[0]) == "kubelet" {
		args = append([]string{"kubelet"}, args...)
	}
	code := run(ctx, args, os.Stdout, os.Stderr)
	stop()
	klog.Flush()
	os.Exit(code)
}

// run executes the berth command line args (without the program name) and
// returns the process exit code. Commands that run until shutdown stop when
// ctx is cancelled.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch name, rest := args[0], args[1:]; name {
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "version":
		return cmdVersion(rest, stdout, stderr)
	case "kubelet":
		return cmdKubelet(ctx, rest, stdout, stderr)
	case "image":
		return cmdImage(ctx, rest, stdout, stderr)
	case "rbac":
		return cmdRBAC(rest, stdout, stderr)
	case "rules":
		return cmdRules(ctx, rest, stdout, stderr)
	case "install":
		return cmdInstall(ctx, rest, stdout, stderr)
	case "join":
		return cmdJoin(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "berth: unknown command %q\n\n%s", name, usage)
		return exitUsage
	}
}

// parseFlags parses a command's flags. It returns ok=false with the exit
// code when the command must stop: help was asked for (printed to stdout,
// exit 0), or the flags or arguments are wrong (reported on stderr, exit 2).
// The command takes no positional arguments.
func parseFlags(fs *flag.FlagSet, synopsis string, args []string, stdout, stderr io.Writer) (ok bool, code int) {
	// The flag package would print errors and usage to one stream; berth
	// prints help to stdout and errors to stderr.
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, commandUsage(fs, synopsis))
		return false, exitOK
	case err != nil:
		return false, usageError(stderr, fs.Name(), err.Error())
	case fs.NArg() > 0:
		return false, usageError(stderr, fs.Name(), "unexpected arguments: "+strings.Join(fs.Args(), " "))
	}
	return true, exitOK
}

// usageError reports a command-line mistake in the named command and
// returns exitUsage.
func usageError(stderr io.Writer, command, msg string) int {
	fmt.Fprintf(stderr, "%s: %s\nRun '%s -h' for usage.\n", command, msg, command)
	return exitUsage
}

// commandUsage renders a command's help: the synopsis, then its flags if
// it has any.
func commandUsage(fs *flag.FlagSet, synopsis string) string {
	var b strings.Builder
	b.WriteString(synopsis)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		b.WriteString("\nFlags:\n")
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return b.String()
}
