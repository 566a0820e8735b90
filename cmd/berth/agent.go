package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/cmd/berth/config"
)

const runSynopsis = `Usage: berth run --config FILE [--check] [-v N] [-vmodule SPEC]

Run the node agent until SIGINT or SIGTERM. With --check, only load and
validate the configuration file. An invalid configuration exits with status 2
and lists every problem.
`

// runOptions are the flags of "berth run".
type runOptions struct {
	// configFile is the path of the BerthConfiguration file.
	configFile string
	// check stops after validating the configuration.
	check bool
}

// cmdRun implements "berth run": flags → configuration → validate → run.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var opts runOptions
	fs := flag.NewFlagSet("berth run", flag.ContinueOnError)
	fs.StringVar(&opts.configFile, "config", "", "path of the berth configuration `FILE` (a BerthConfiguration YAML document); required")
	fs.BoolVar(&opts.check, "check", false, "load and validate the configuration, then exit")
	addKlogFlags(fs)
	if ok, code := parseFlags(fs, runSynopsis, args, stdout, stderr); !ok {
		return code
	}
	if opts.configFile == "" {
		return usageError(stderr, fs.Name(), "--config is required")
	}

	cfg, err := config.Load(opts.configFile)
	if err != nil {
		fmt.Fprintf(stderr, "berth: invalid configuration: %v\n", err)
		return exitUsage
	}
	if opts.check {
		fmt.Fprintf(stdout, "berth: configuration %s is valid\n", opts.configFile)
		return exitOK
	}
	if err := runAgent(ctx, cfg, func(ctx context.Context) error { return runKubelet(ctx, cfg, nil) }); err != nil {
		fmt.Fprintf(stderr, "berth: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// addKlogFlags exposes klog's verbosity flags on fs. Like kubelet today,
// berth offers only -v and -vmodule; klog's file and header flags stay
// hidden.
func addKlogFlags(fs *flag.FlagSet) {
	all := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(all)
	fs.Var(all.Lookup("v").Value, "v", "log verbosity `N` (0 logs only what an operator needs; higher numbers add detail)")
	fs.Var(all.Lookup("vmodule").Value, "vmodule", "per-file log verbosity `SPEC`, a comma-separated list of pattern=N")
}

// setLogVerbosity applies kubelet's --v and --vmodule (empty: unchanged).
func setLogVerbosity(v, vmodule string) error {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if v != "" {
		if err := fs.Set("v", v); err != nil {
			return fmt.Errorf("--v=%s: %w", v, err)
		}
	}
	if vmodule != "" {
		if err := fs.Set("vmodule", vmodule); err != nil {
			return fmt.Errorf("--vmodule=%s: %w", vmodule, err)
		}
	}
	return nil
}

// runAgent runs the agent's loops under one errgroup until ctx is cancelled
// or a loop fails, and returns the first failure. Loops must return nil once
// their context is cancelled. With no loops it simply waits for shutdown.
func runAgent(ctx context.Context, cfg *config.Config, loops ...func(context.Context) error) error {
	logger := klog.FromContext(ctx)
	logger.Info("Starting berth", append([]any{"version", version, "commit", commit}, configSummary(cfg)...)...)

	g, gctx := errgroup.WithContext(ctx)
	for _, loop := range loops {
		g.Go(func() error { return loop(gctx) })
	}
	<-gctx.Done()
	logger.Info("Shutting down", "reason", context.Cause(gctx))
	if err := g.Wait(); err != nil {
		return fmt.Errorf("node agent failed: %w", err)
	}
	logger.Info("Stopped")
	return nil
}

// configSummary returns the effective configuration as structured logging
// key/value pairs, named like the configuration file's fields.
func configSummary(cfg *config.Config) []any {
	return []any{
		"nodeName", cfg.NodeName,
		"kubelet.configFile", cfg.Kubelet.ConfigFile,
		"kubelet.kubeadmFlagsFile", cfg.Kubelet.KubeadmFlagsFile,
		"kubelet.bootstrapKubeconfig", cfg.Kubelet.BootstrapKubeconfig,
		"kubelet.kubeconfig", cfg.Kubelet.Kubeconfig,
		"kubelet.rootDir", cfg.Kubelet.RootDir,
		"kubelet.containerRuntimeEndpoint", cfg.Kubelet.ContainerRuntimeEndpoint,
		"kubelet.podNetwork", cfg.Kubelet.PodNetwork,
		"proxy.enabled", cfg.Proxy.Enabled,
		"proxy.mode", cfg.Proxy.Mode,
		"proxy.configFile", cfg.Proxy.ConfigFile,
	}
}
