// Command testbed brings berth's end-to-end test bed up and down and runs
// commands on its hosts. The Makefile's testbed-up, testbed-down and demo
// targets call it.
//
//	testbed up [--nodes N] [--join]  build the bed (and join berth nodes); leave it running
//	testbed down                 remove it
//	testbed status               hosts, addresses, containerd versions, /readyz
//	testbed exec HOST -- CMD...  run CMD on a host (cp, node1, ...)
//	testbed kubectl ARGS...      run kubectl with the admin kubeconfig
//	testbed demo [--nodes N]     up --join, status, the demo steps (test/demo), wait for Ctrl-C, down
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/berthnode/berth/cri"
	"github.com/berthnode/berth/test/demo"
	"github.com/berthnode/berth/test/testbed"
)

const usage = `usage: testbed [--name NAME] [--root DIR] COMMAND
commands:
  up [--nodes N] [--join]
                        build the test bed and leave it running; --join installs
                        berth on every node as its kubelet and runs kubeadm join
  down                  take it down: stop processes, remove namespaces, mounts, cgroups, files
  status                list hosts, addresses and containerd versions; show /readyz
  exec HOST -- CMD...   run CMD on a host (cp, node1, ...)
  kubectl ARGS...       run kubectl on the control plane with the admin kubeconfig
  demo [--nodes N]      up --join, status, an echo Deployment behind a Service, 30
                        requests to it from node1, the rules berth programmed;
                        Ctrl-C takes it down
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testbed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	name := fs.String("name", testbed.DefaultName, "name of the bed")
	root := fs.String("root", envOr("BERTH_TESTBED_ROOT", testbed.DefaultRoot), "folder of the run folders")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	var err error
	switch cmd {
	case "up":
		err = up(ctx, *name, *root, rest, stdout)
	case "down":
		err = down(ctx, *name, *root)
	case "status":
		err = withBed(*name, *root, func(tb *testbed.Testbed) error { return status(ctx, tb, stdout) })
	case "exec":
		return execOn(ctx, *name, *root, rest, stderr)
	case "kubectl":
		return execOn(ctx, *name, *root, append([]string{testbed.ControlPlaneHost, "--", "@kubectl"}, rest...), stderr)
	case "demo":
		err = runDemo(ctx, *name, *root, rest, stdout)
	default:
		fmt.Fprintf(stderr, "testbed: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "testbed %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// upOptions are the flags of up and demo.
type upOptions struct {
	nodes int
	join  bool
}

// parseUp parses the flags of up and demo.
func parseUp(args []string) (upOptions, error) {
	var o upOptions
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.IntVar(&o.nodes, "nodes", 1, "number of node hosts")
	fs.BoolVar(&o.join, "join", false, "install berth on every node and kubeadm join it")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, nil
}

func up(ctx context.Context, name, root string, args []string, stdout io.Writer) error {
	_, err := bringUp(ctx, name, root, args, stdout)
	return err
}

func bringUp(ctx context.Context, name, root string, args []string, stdout io.Writer) (*testbed.Testbed, error) {
	opts, err := parseUp(args)
	if err != nil {
		return nil, err
	}
	nodes := opts.nodes
	cfg, err := testbed.DefaultConfig(ctx, name, nodes)
	if err != nil {
		return nil, err
	}
	cfg.Root = root
	start := time.Now()
	fmt.Fprintf(stdout, "bringing up test bed %q with %d node(s) in %s/%s\n", name, nodes, root, name)
	tb, err := testbed.Up(ctx, cfg)
	if err != nil {
		if tb != nil {
			fmt.Fprintf(stdout, "logs: %s\n", tb.LogDir())
		}
		return tb, err
	}
	fmt.Fprintf(stdout, "test bed up in %s; logs in %s\n", time.Since(start).Round(time.Second), tb.LogDir())
	if opts.join {
		if err := tb.JoinNodes(ctx, stdout); err != nil {
			return tb, err
		}
	}
	return tb, nil
}

func down(ctx context.Context, name, root string) error {
	tb, err := testbed.Open(root, name)
	if errors.Is(err, os.ErrNotExist) {
		return nil // nothing to take down
	}
	if err != nil {
		return err
	}
	return tb.Down(ctx)
}

func withBed(name, root string, fn func(*testbed.Testbed) error) error {
	tb, err := testbed.Open(root, name)
	if err != nil {
		return err
	}
	return fn(tb)
}

// status prints the control plane's /readyz and each node's containerd.
func status(ctx context.Context, tb *testbed.Testbed, stdout io.Writer) error {
	readyz, err := tb.Kubectl(ctx, "get", "--raw", "/readyz?verbose")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n$ kubectl get --raw /readyz   (on %s, %s)\n%s\n", testbed.ControlPlaneHost, tb.ControlPlaneEndpoint(), readyz)
	fmt.Fprintf(stdout, "%-8s %-16s %s\n", "HOST", "ADDRESS", "CONTAINER RUNTIME")
	for _, n := range tb.Nodes() {
		version := "unreachable"
		if c, err := cri.Dial(n.CRIEndpoint); err == nil {
			if v, err := c.WaitVersion(ctx, 5*time.Second); err == nil {
				version = v.RuntimeName + " " + v.RuntimeVersion + " (CRI " + v.RuntimeApiVersion + ")"
			}
			c.Close()
		}
		fmt.Fprintf(stdout, "%-8s %-16s %s\n", n.Name, n.IP, version)
	}
	return nil
}

// execOn runs a command on a host with the terminal's stdio, and returns its
// exit code. "@kubectl" as the command stands for the upstream kubectl with
// the admin kubeconfig.
func execOn(ctx context.Context, name, root string, args []string, stderr io.Writer) int {
	if len(args) < 3 || args[1] != "--" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	tb, err := testbed.Open(root, name)
	if err != nil {
		fmt.Fprintf(stderr, "testbed exec: %v\n", err)
		return 1
	}
	host, argv := args[0], args[2:]
	if argv[0] == "@kubectl" {
		argv = append([]string{tb.UpstreamBinary("kubectl"), "--kubeconfig", testbed.AdminKubeconfig}, argv[1:]...)
	}
	cmd := tb.Command(ctx, host, argv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode()
	case err != nil:
		fmt.Fprintf(stderr, "testbed exec: %v\n", err)
		return 1
	}
	return 0
}

// runDemo brings the bed up, shows it, and takes it down on Ctrl-C.
func runDemo(ctx context.Context, name, root string, args []string, stdout io.Writer) error {
	tb, err := bringUp(ctx, name, root, append([]string{"--join"}, args...), stdout)
	if err == nil {
		err = status(ctx, tb, stdout)
	}
	if err == nil {
		err = demoSteps(ctx, tb, stdout)
	}
	if err == nil {
		fmt.Fprintf(stdout, "\nThe test bed is running. Try, in another terminal:\n"+
			"  bin/testbed kubectl get nodes,pods,services -A -o wide\n"+
			"  bin/testbed exec node1 -- iptables-save -t nat   # the rules berth wrote\n"+
			"  bin/testbed exec node1 -- ip addr\n"+
			"Press Ctrl-C to take it down.\n")
		<-ctx.Done()
	}
	if tb == nil {
		return err
	}
	fmt.Fprintln(stdout, "\ntaking the test bed down")
	// The signal ended ctx: take the bed down with a fresh one.
	if derr := tb.Down(context.Background()); derr != nil {
		return errors.Join(err, derr)
	}
	fmt.Fprintln(stdout, "test bed removed")
	return err
}

// demoRequests is how many requests the demo sends to the echo Service:
// 10 per pod, enough to see round-robin at a glance.
const demoRequests = 10 * demo.Replicas

// demoSteps shows berth at work on the joined nodes: as the kubelet (an
// echo Deployment) and as the service proxy (a Service in front of it,
// requests from the first node, the rules explained).
func demoSteps(ctx context.Context, tb *testbed.Testbed, stdout io.Writer) error {
	cfg := demo.Config{Bed: tb, Client: tb.Nodes()[0].Name, Requests: demoRequests, Out: stdout}
	if err := demo.Workload(ctx, cfg); err != nil {
		return err
	}
	_, err := demo.ServiceProxy(ctx, cfg)
	return err
}
