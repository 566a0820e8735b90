package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// Names of what the steps create.
const (
	// Name is the echo Deployment's and its Service's.
	Name = "echo"
	// Replicas is the echo Deployment's pod count.
	Replicas = 3
	// servicePort is the Service's port; the echo server's HTTP port is
	// 8080.
	servicePort = 80
	// rulesTimeout bounds the wait for berth to program the Service once
	// its pods are ready.
	rulesTimeout = time.Minute
	// shownAnswers is how many of the echo client's answers are printed as
	// they come, to show what one looks like.
	shownAnswers = 3
)

// Config says where the steps run.
type Config struct {
	// Bed is the test bed, up with its nodes joined.
	Bed *testbed.Testbed
	// Namespace holds the Deployment and the Service; empty is the admin
	// kubeconfig's, "default".
	Namespace string
	// Client is the node host the requests are sent from.
	Client string
	// Requests is how many requests go to the cluster IP.
	Requests int
	// Out receives what the operator reads.
	Out io.Writer
}

// ServiceResult is what the service step saw.
type ServiceResult struct {
	// ClusterIP is the Service's.
	ClusterIP string
	// Answers counts the answers to the requests per pod.
	Answers map[string]int
	// Explain is what `berth rules explain` printed on the client node.
	Explain string
}

// Workload waits for the nodes to be Ready, shows them and runs a
// Deployment of Replicas echo pods on them.
func Workload(ctx context.Context, cfg Config) error {
	steps := [][]string{
		{"wait", "--for=condition=Ready", "node", "--all", "--timeout=90s"},
		{"get", "nodes", "-o", "wide"},
		{"create", "deployment", Name, "--image=" + images.EchoRef, fmt.Sprintf("--replicas=%d", Replicas), "--port=8080"},
		{"rollout", "status", "deployment/" + Name, "--timeout=120s"},
		{"get", "pods", "-o", "wide"},
	}
	for _, args := range steps {
		if _, err := cfg.kubectl(ctx, true, args...); err != nil {
			return err
		}
	}
	return nil
}

// ServiceProxy puts a ClusterIP Service in front of the echo Deployment,
// waits until berth on the client node has programmed it, sends
// cfg.Requests requests to the cluster IP from inside the client node's
// network namespace (each on a new connection, so each is balanced anew),
// prints how many each pod answered, and prints `berth rules explain` for
// the Service on that node.
func ServiceProxy(ctx context.Context, cfg Config) (ServiceResult, error) {
	var res ServiceResult
	if err := cfg.Validate(); err != nil {
		return res, fmt.Errorf("service proxy demo: %w", err)
	}
	fmt.Fprintf(cfg.Out, "\nberth is also the node's service proxy, in kube-proxy's place: it turns each\n"+
		"Service into iptables rules that spread new connections over the Service's pods.\n"+
		"A ClusterIP Service in front of the %d echo pods:\n", Replicas)
	for _, args := range [][]string{
		{"expose", "deployment", Name, fmt.Sprintf("--port=%d", servicePort), "--target-port=8080"},
		{"get", "service", Name, "-o", "wide"},
	} {
		if _, err := cfg.kubectl(ctx, true, args...); err != nil {
			return res, err
		}
	}
	ip, err := cfg.kubectl(ctx, false, "get", "service", Name, "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		return res, err
	}
	res.ClusterIP = strings.TrimSpace(string(ip))
	if err := cfg.waitRules(ctx); err != nil {
		return res, err
	}
	if res.Answers, err = cfg.sendRequests(ctx, res.ClusterIP); err != nil {
		return res, err
	}
	fmt.Fprintf(cfg.Out, "\nWhat berth programmed for the Service on %s, read back from the kernel:\n", cfg.Client)
	out, err := cfg.onClient(ctx, true, "berth", "rules", "explain", cfg.service())
	res.Explain = string(out)
	return res, err
}

// waitRules waits until `berth rules explain` on the client node lists the
// address of every echo pod: the Deployment's rollout ends when the pods
// are ready, and the EndpointSlice and then berth follow.
func (cfg Config) waitRules(ctx context.Context) error {
	out, err := cfg.kubectl(ctx, false, "get", "pods", "-l", "app="+Name, "--field-selector=status.phase=Running",
		"-o", "jsonpath={.items[*].status.podIP}")
	if err != nil {
		return err
	}
	ips := strings.Fields(string(out))
	fmt.Fprintf(cfg.Out, "\nWaiting for berth on %s to program the Service's rules for the pods %s ...", cfg.Client, strings.Join(ips, ", "))
	start, last := time.Now(), ""
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, rulesTimeout, true, func(ctx context.Context) (bool, error) {
		out, err := cfg.onClient(ctx, false, "berth", "rules", "explain", cfg.service())
		last = string(out)
		if err != nil {
			last = err.Error()
			return false, nil // not programmed yet
		}
		return len(ips) == Replicas && containsAll(last, ips), nil
	})
	if err != nil {
		fmt.Fprintln(cfg.Out)
		return fmt.Errorf("berth on %s has not programmed %s for the pods %v within %v: %w; it explains:\n%s", cfg.Client, cfg.service(), ips, rulesTimeout, err, last)
	}
	fmt.Fprintf(cfg.Out, " done in %v.\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// sendRequests runs the echo client on the client node against the
// cluster IP, prints the first answers and the count per pod, and returns
// the counts.
func (cfg Config) sendRequests(ctx context.Context, clusterIP string) (map[string]int, error) {
	client, err := cfg.Bed.InstallEcho(cfg.Client)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Out, "\n%d requests to the cluster IP, sent from %s's own network namespace by the echo\n"+
		"image's client. Each pod answers with its name and the client address it sees:\n", cfg.Requests, cfg.Client)
	args := []string{client, "get", fmt.Sprintf("http://%s:%d/", clusterIP, servicePort), "--count", fmt.Sprint(cfg.Requests)}
	cfg.showCommand(args)
	out, err := cfg.Bed.Output(ctx, cfg.Client, args...)
	var lines []string
	if len(out) > 0 {
		lines = strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	}
	for i, line := range lines {
		if i == shownAnswers {
			fmt.Fprintf(cfg.Out, "... (%d more)\n", len(lines)-shownAnswers)
			break
		}
		fmt.Fprintln(cfg.Out, line)
	}
	if err != nil {
		return nil, err
	}
	counts, err := ParseAnswers(string(out))
	if err != nil {
		return nil, fmt.Errorf("echo client on %s: %w", cfg.Client, err)
	}
	fmt.Fprintln(cfg.Out)
	return counts, WriteCounts(cfg.Out, counts, Replicas)
}

// kubectl runs kubectl as the cluster admin in cfg.Namespace and returns
// its output; shown prints the command and its output, as in a terminal.
func (cfg Config) kubectl(ctx context.Context, shown bool, args ...string) ([]byte, error) {
	if cfg.Namespace != "" {
		args = append([]string{"--namespace=" + cfg.Namespace}, args...)
	}
	if shown {
		fmt.Fprintf(cfg.Out, "\n$ kubectl %s\n", strings.Join(args, " "))
	}
	out, err := cfg.Bed.Kubectl(ctx, args...)
	if shown {
		cfg.Out.Write(out)
	}
	return out, err
}

// onClient runs args on the client node; shown prints the command (as
// `testbed exec` runs it) and its output.
func (cfg Config) onClient(ctx context.Context, shown bool, args ...string) ([]byte, error) {
	if shown {
		cfg.showCommand(args)
	}
	out, err := cfg.Bed.Output(ctx, cfg.Client, args...)
	if shown {
		cfg.Out.Write(out)
	}
	return out, err
}

// showCommand prints how an operator runs args on the client node.
func (cfg Config) showCommand(args []string) {
	fmt.Fprintf(cfg.Out, "$ bin/testbed exec %s -- %s\n", cfg.Client, strings.Join(args, " "))
}

// service names the Service for `berth rules explain`.
func (cfg Config) service() string {
	ns := cfg.Namespace
	if ns == "" {
		ns = "default"
	}
	return ns + "/" + Name
}

// Validate reports a Config the steps cannot run with.
func (cfg Config) Validate() error {
	var errs []error
	if cfg.Bed == nil {
		errs = append(errs, errors.New("no test bed"))
	}
	if cfg.Client == "" {
		errs = append(errs, errors.New("no client node"))
	}
	if cfg.Requests < 1 {
		errs = append(errs, fmt.Errorf("requests %d, want at least 1", cfg.Requests))
	}
	if cfg.Out == nil {
		errs = append(errs, errors.New("no output"))
	}
	return errors.Join(errs...)
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
