package proxybench

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthnode/berth/netrules/iptables"
	"github.com/berthnode/berth/netrules/xtables"
)

// scratchNetns is a network namespace of the benchmark's own, outside the
// bed: one OS thread is unshared into it and runs what the benchmark hands
// it, and the processes it starts live there. The thread is never
// unlocked, so it exits at close and the namespace goes with it; no other
// namespace is touched.
type scratchNetns struct {
	calls chan func()
}

func newScratchNetns() (*scratchNetns, error) {
	n := &scratchNetns{calls: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("create a network namespace: %w", err)
			return
		}
		errc <- nil
		for f := range n.calls {
			f()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return n, nil
}

// do runs f on the namespace's thread and waits for it.
func (n *scratchNetns) do(f func()) {
	done := make(chan struct{})
	n.calls <- func() {
		defer close(done)
		f()
	}
	<-done
}

// close ends the thread, and with it the namespace.
func (n *scratchNetns) close() { close(n.calls) }

// run runs a command in the namespace, feeding it stdin (nil for none),
// and returns its standard output and the finished command (for its
// resource use).
func (n *scratchNetns) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, *exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var err error
	n.do(func() { err = cmd.Run() })
	if err != nil {
		return stdout.Bytes(), cmd, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), cmd, nil
}

// iptablesBinaries are the restore and save binaries of one iptables
// backend.
type iptablesBinaries struct {
	// name is "nft" or "legacy".
	name, restore, save string
}

// floorBackends are the backends the floors are measured with; berth uses
// the machine's (nf_tables on these machines).
var floorBackends = []iptablesBinaries{
	{name: "nft", restore: "iptables-nft-restore", save: "iptables-nft-save"},
	{name: "legacy", restore: "iptables-legacy-restore", save: "iptables-legacy-save"},
}

// restoreRun is one payload applied by iptables-restore, one process per
// table as berth does.
type restoreRun struct {
	// wall is the time from the first start to the last exit.
	wall time.Duration
	// cpu is the user and system time of the processes.
	cpu time.Duration
}

// restore applies each table's data with `restore --noflush --wait`, as
// berth's backend does.
func restore(ctx context.Context, n *scratchNetns, binary string, tables []xtables.TableData) (restoreRun, error) {
	var r restoreRun
	for _, t := range tables {
		start := time.Now()
		_, cmd, err := n.run(ctx, t.Data, binary, "--noflush", "--wait")
		r.wall += time.Since(start)
		// (Not the peak RSS: a child forked with vfork shares the
		// test process's memory until its exec, and ru_maxrss counts it.)
		if st := cmd.ProcessState; st != nil {
			r.cpu += st.UserTime() + st.SystemTime()
		}
		if err != nil {
			return r, fmt.Errorf("%s table: %w", t.Table, err)
		}
	}
	return r, nil
}

// floor is what bare iptables-restore takes for a size's payloads.
type floor struct {
	// full is the full payload applied to an empty namespace; partial is
	// the median of floorFlips applications of the first flip's partial
	// payload on top of it, once the built-in chains jump to berth's.
	full, partial restoreRun
	// saveNAT is how long `save -t nat` then takes: berth lists its chains
	// so at every full sync (of both tables).
	saveNAT time.Duration
}

// primer creates the filter and nat tables and nothing else, so that the
// floor does not count their one-time creation: on a node they exist before
// the proxy starts.
const primer = "*filter\n:BERTH-PRIME - [0:0]\n-X BERTH-PRIME\nCOMMIT\n*nat\n:BERTH-PRIME - [0:0]\n-X BERTH-PRIME\nCOMMIT\n"

// floorFlips is how many times the floor applies the partial payload (the
// first time changes the rules, the others rewrite the same ones: the same
// work for iptables-restore and the kernel); it keeps the median.
const floorFlips = 3

// measureFloor applies p's full payload, then the jumps from the built-in
// chains, then its flip payload, in a fresh network namespace with the
// given backend, and checks that the kernel then holds every endpoint
// chain.
func measureFloor(ctx context.Context, bins iptablesBinaries, p *payloads) (floor, error) {
	n, err := newScratchNetns()
	if err != nil {
		return floor{}, err
	}
	defer n.close()
	if _, _, err := n.run(ctx, []byte(primer), bins.restore, "--noflush", "--wait"); err != nil {
		return floor{}, fmt.Errorf("%s floor: create the tables: %w", bins.name, err)
	}
	var f floor
	if f.full, err = restore(ctx, n, bins.restore, p.full.Tables); err != nil {
		return f, fmt.Errorf("%s floor, full payload: %w", bins.name, err)
	}
	// On a node the built-in chains jump to berth's, and with nf_tables
	// that costs every later change: the kernel checks the whole graph of
	// chains reachable from a built-in chain at each commit that adds a
	// jump. A floor without the jumps would measure a ruleset no proxy
	// can use.
	if _, _, err := n.run(ctx, hookPayload(), bins.restore, "--noflush", "--wait"); err != nil {
		return f, fmt.Errorf("%s floor: jump from the built-in chains: %w", bins.name, err)
	}
	var flips []restoreRun
	for range floorFlips {
		r, err := restore(ctx, n, bins.restore, p.flip.Tables)
		if err != nil {
			return f, fmt.Errorf("%s floor, partial payload: %w", bins.name, err)
		}
		flips = append(flips, r)
	}
	slices.SortFunc(flips, func(a, b restoreRun) int { return cmp.Compare(a.wall, b.wall) })
	f.partial = flips[len(flips)/2]
	start := time.Now()
	out, _, err := n.run(ctx, nil, bins.save, "-t", string(xtables.TableNAT))
	f.saveNAT = time.Since(start)
	if err != nil {
		return f, fmt.Errorf("%s floor: %w", bins.name, err)
	}
	if got := countEndpointChains(out); got != p.endpointChains {
		return f, fmt.Errorf("%s floor: the kernel holds %d endpoint chains after the payloads, want %d", bins.name, got, p.endpointChains)
	}
	return f, nil
}

// hookPayload inserts berth's jumps from the built-in chains, as the
// backend does after its first sync.
func hookPayload() []byte {
	var b strings.Builder
	for _, table := range []xtables.Table{xtables.TableFilter, xtables.TableNAT} {
		fmt.Fprintf(&b, "*%s\n", table)
		for _, h := range iptables.HookRules() {
			if h.Table != table {
				continue
			}
			fmt.Fprintf(&b, "-I %s 1", h.Chain)
			for _, arg := range h.Rule {
				if strings.ContainsAny(arg, " \"") {
					arg = strconv.Quote(arg)
				}
				b.WriteString(" " + arg)
			}
			b.WriteString("\n")
		}
		b.WriteString("COMMIT\n")
	}
	return []byte(b.String())
}

// endpointChainDecl starts the declaration of an endpoint chain in
// iptables-save output and restore input.
const endpointChainDecl = ":" + iptables.ChainPrefix + "SEP-"

// countEndpointChains counts the endpoint chains iptables-save lists.
func countEndpointChains(save []byte) int {
	n := 0
	for line := range strings.Lines(string(save)) {
		if strings.HasPrefix(line, endpointChainDecl) {
			n++
		}
	}
	return n
}
