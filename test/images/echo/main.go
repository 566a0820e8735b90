// Command echo is the program of berth's test image berth.local/echo. End to
// end tests run it as a pod (serve) and as a client from inside network
// namespaces (get, tcp, udp) to see which pod answered and which client
// address the pod saw, which is how they check load balancing, NAT and
// source-IP preservation.
//
// Usage:
//
//	echo [serve] [--http :8080] [--tcp :9000] [--udp :9001] [--name NAME]
//	echo get URL [--count N] [--timeout 2s]
//	echo tcp HOST:PORT [--count N] [--timeout 2s]
//	echo udp HOST:PORT [--count N] [--timeout 2s]
//
// Every answer is one line, "NAME CLIENT_IP:CLIENT_PORT". Over HTTP,
// /healthz answers "ok" (or 503 after /sethealth?ok=false, until
// /sethealth?ok=true), /env lists the environment and /exit?code=N makes
// the server exit with N once it has answered. The program is static
// (CGO_ENABLED=0) so that the image needs no other file.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage:
  echo [serve] [--http :8080] [--tcp :9000] [--udp :9001] [--name NAME]
  echo get URL [--count N] [--timeout 2s]
  echo tcp HOST:PORT [--count N] [--timeout 2s]
  echo udp HOST:PORT [--count N] [--timeout 2s]
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code. ctx ends when
// the process is asked to terminate.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	command, rest := "serve", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		command, rest = args[0], args[1:]
	}
	switch command {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "get", "tcp", "udp":
		return runClient(ctx, command, rest, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "echo: unknown command %q\n%s", command, usage)
		return 2
	}
}

// parseInterspersed parses flags that may come before or after the
// positional arguments ("echo get URL --count 3"), which flag.Parse alone
// does not allow, and returns the positional arguments.
func parseInterspersed(flags *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := flags.Parse(args); err != nil {
			return nil, err
		}
		args = flags.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// newFlagSet returns a flag set that reports errors to stderr without
// exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	flags := flag.NewFlagSet("echo "+name, flag.ContinueOnError)
	flags.SetOutput(stderr)
	return flags
}
