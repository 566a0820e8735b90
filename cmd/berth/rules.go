package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/berthnode/berth/netrules/explain"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

const rulesSynopsis = `Usage: berth rules explain [--family 4|6] NAMESPACE/SERVICE[:PORT]

Explain what berth's proxy (iptables or IPVS mode, whichever the kernel
holds) programmed on this node for a service,
read back from the kernel with iptables-save (ip6tables-save for --family 6)
for the nat and filter tables, so it needs root. Per service port: its cluster
IP, node port, external and load-balancer IPs and source ranges; the endpoints
new connections take in turn; session affinity; the traffic policies and
masquerade; what happens without endpoints; and the chain holding each.

Exit status: 0 explained, 1 nothing is programmed for the service or the rules
cannot be read, 2 bad command line.
`

// cmdRules implements "berth rules explain".
func cmdRules(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return rulesExplain(ctx, xtables.OSExec{}, args, stdout, stderr)
}

// rulesExplain runs "berth rules explain" with the iptables binaries run by
// ex.
func rulesExplain(ctx context.Context, ex xtables.Exec, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		fmt.Fprint(stdout, rulesSynopsis)
		return exitOK
	case len(args) == 0 || args[0] != "explain":
		return usageError(stderr, "berth rules", "the only subcommand is explain")
	}
	fs := flag.NewFlagSet("berth rules explain", flag.ContinueOnError)
	family := fs.Int("family", 4, "the IP `family` of the rules to read: 4 (iptables) or 6 (ip6tables)")
	fs.SetOutput(io.Discard)
	// The flags may come before or after the service.
	var services []string
	for rest := args[1:]; ; rest = fs.Args()[1:] {
		err := fs.Parse(rest)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, commandUsage(fs, rulesSynopsis))
			return exitOK
		}
		if err != nil {
			return usageError(stderr, fs.Name(), err.Error())
		}
		if fs.NArg() == 0 {
			break
		}
		services = append(services, fs.Arg(0))
	}
	if len(services) != 1 {
		return usageError(stderr, fs.Name(), "give one service, as NAMESPACE/SERVICE or NAMESPACE/SERVICE:PORT")
	}
	if *family != 4 && *family != 6 {
		return usageError(stderr, fs.Name(), fmt.Sprintf("--family is 4 or 6, not %d", *family))
	}
	e, err := explain.Service(ctx, explain.Config{Family: proxy.Family(*family), Exec: ex}, services[0])
	switch {
	case errors.Is(err, explain.ErrBadServiceName):
		// A bad name is a usage error, found without running iptables-save.
		return usageError(stderr, fs.Name(), err.Error())
	case err != nil:
		fmt.Fprintf(stderr, "berth: %v\n", err)
		return exitFailure
	}
	if err := e.Write(stdout); err != nil {
		fmt.Fprintf(stderr, "berth: %v\n", err)
		return exitFailure
	}
	return exitOK
}
