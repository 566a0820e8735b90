package demo

import (
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
)

// ParseAnswers counts the echo client's answers per pod. Each line of out
// is one answer, "POD CLIENT_IP:CLIENT_PORT", as the echo server words it;
// any other line is an error that quotes it, since a miscounted answer
// would misreport the balancing.
func ParseAnswers(out string) (map[string]int, error) {
	counts := map[string]int{}
	for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" && i == 0 {
			break // no answer at all
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("answer %d %q: want \"POD CLIENT_IP:PORT\"", i+1, line)
		}
		if _, err := netip.ParseAddrPort(f[1]); err != nil {
			return nil, fmt.Errorf("answer %d %q: client address: %w", i+1, line, err)
		}
		counts[f[0]]++
	}
	return counts, nil
}

// RoundRobin reports whether counts is what taking the pods in turn
// gives: no pod answered more than one request more than another.
func RoundRobin(counts map[string]int) bool {
	if len(counts) == 0 {
		return false
	}
	n := slices.Collect(maps.Values(counts))
	return slices.Max(n)-slices.Min(n) <= 1
}

// WriteCounts prints counts as a table of pods, by name, and a line that
// says whether the requests were balanced round-robin over want pods.
func WriteCounts(w io.Writer, counts map[string]int, want int) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "POD\tANSWERS")
	total := 0
	for _, pod := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(tw, "%s\t%d\n", pod, counts[pod])
		total += counts[pod]
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var verdict string
	switch {
	case total == 0:
		verdict = "No pod answered."
	case len(counts) < want:
		verdict = fmt.Sprintf("%d of the %d pods answered: not every pod is in the rules.", len(counts), want)
	case len(counts) > want:
		verdict = fmt.Sprintf("%d pods answered, not %d: the rules hold pods the Deployment no longer has.", len(counts), want)
	case RoundRobin(counts):
		verdict = fmt.Sprintf("Round-robin: each new connection went to the next pod in turn, %s.", shares(counts, total))
	default:
		verdict = fmt.Sprintf("Not round-robin: the %d answers are spread unevenly over the %d pods.", total, want)
	}
	_, err := fmt.Fprintln(w, verdict)
	return err
}

// shares says how many answers each pod gave, for a round-robin spread:
// "10 of 30 to each pod", or "10 or 11 of 31 to each pod".
func shares(counts map[string]int, total int) string {
	n := slices.Collect(maps.Values(counts))
	lo, hi := slices.Min(n), slices.Max(n)
	if lo == hi {
		return fmt.Sprintf("%d of %d to each pod", lo, total)
	}
	return fmt.Sprintf("%d or %d of %d to each pod", lo, hi, total)
}
