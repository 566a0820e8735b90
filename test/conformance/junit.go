package conformance

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
)

// Outcome is what became of one selected spec.
type Outcome string

// The outcomes a summary counts.
const (
	Passed  Outcome = "passed"
	Failed  Outcome = "failed"
	Skipped Outcome = "skipped"
	// NotRun is a selected spec no report mentions (the run was cut short).
	NotRun Outcome = "not run"
)

// Result is one spec's result in a JUnit report.
type Result struct {
	// Text is the spec's full text (without ginkgo's "[It] " prefix).
	Text string
	// Outcome is passed, failed or skipped.
	Outcome Outcome
	// Message is the first line of the failure (or skip) message.
	Message string
}

// junitSuites is the part of a JUnit file the summary reads.
type junitSuites struct {
	Suites []struct {
		Cases []struct {
			Name    string `xml:"name,attr"`
			Status  string `xml:"status,attr"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Body    string `xml:",chardata"`
			} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// ReadJUnit reads the results of every junit*.xml file below dir.
func ReadJUnit(dir string) ([]Result, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), "junit") && strings.HasSuffix(d.Name(), ".xml") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find JUnit reports: %w", err)
	}
	var results []Result
	for _, f := range files {
		rs, err := readJUnitFile(f)
		if err != nil {
			return nil, err
		}
		results = append(results, rs...)
	}
	return results, nil
}

// readJUnitFile reads the results of one JUnit file.
func readJUnitFile(path string) ([]Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JUnit report: %w", err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode JUnit report %s: %w", path, err)
	}
	var results []Result
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			r := Result{Text: strings.TrimPrefix(c.Name, "[It] "), Outcome: Passed}
			switch {
			case c.Failure != nil:
				r.Outcome, r.Message = Failed, failureReason(c.Failure.Message+"\n"+c.Failure.Body)
			case c.Error != nil:
				r.Outcome, r.Message = Failed, failureReason(c.Error.Message+"\n"+c.Error.Body)
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				r.Outcome = Skipped
				if c.Skipped != nil {
					r.Message = firstLine(c.Skipped.Message)
				}
			case c.Status != "" && c.Status != "passed":
				r.Outcome, r.Message = Failed, c.Status
			}
			results = append(results, r)
		}
	}
	return results, nil
}

// maxReason bounds a failure's reason in the summary; the JUnit file has
// it all.
const maxReason = 240

// failureReason condenses ginkgo's failure text ("[FAILED] Expected\n
// <string>: \nto equal ...\nIn [It] at: path/file.go:169 @ time") to one
// line: the message with its whitespace collapsed, cut at maxReason, and
// where it failed. For a panic ("[PANICKED] Test Panicked\nIn [It] at:
// runtime/panic.go:336 ...\n\nruntime error: ...\n\nFull Stack Trace\n
// ...") the panic's value and the first frame of the trace say more.
func failureReason(text string) string {
	msg, rest, _ := strings.Cut(strings.TrimSpace(text), "\nIn [")
	var loc string
	if _, at, ok := strings.Cut(firstLine(rest), " at: "); ok {
		loc, _, _ = strings.Cut(at, " @ ")
	}
	if strings.HasPrefix(msg, "[PANICKED]") {
		if paras := strings.Split(rest, "\n\n"); len(paras) > 1 {
			msg += ": " + paras[1]
		}
		if _, trace, ok := strings.Cut(rest, "Full Stack Trace"); ok {
			if frame := frameRE.FindString(trace); frame != "" {
				loc = frame
			}
		}
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxReason {
		msg = msg[:maxReason] + "..."
	}
	if loc != "" {
		msg += " (" + filepath.Base(strings.TrimSpace(loc)) + ")"
	}
	return msg
}

// frameRE finds a source location (file.go:line) in a stack trace.
var frameRE = regexp.MustCompile(`[\w./@-]+\.go:\d+`)

// firstLine returns the first non-empty line of the first non-empty text.
func firstLine(texts ...string) string {
	for _, t := range texts {
		for _, l := range strings.Split(t, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				return l
			}
		}
	}
	return ""
}

// Counts are the outcomes of one SIG's selected specs.
type Counts struct {
	Passed, Failed, Skipped, NotRun int
}

// Summary is the outcome of a run of a selection.
type Summary struct {
	// BySig counts outcomes per SIG ("sig-node").
	BySig map[string]*Counts
	// Failures are the failed selected specs, sorted by text.
	Failures []Result
}

// Summarize matches results to the selection: each selected spec's latest
// result counts (a [Serial] spec reported as skipped by the parallel run and
// run by the serial one counts as run). Results of specs outside the
// selection (ginkgo reports every spec it filtered out as skipped) are
// ignored.
func Summarize(selection []Spec, results []Result) Summary {
	latest := map[string]Result{}
	for _, r := range results {
		if prev, ok := latest[r.Text]; ok && prev.Outcome != Skipped && r.Outcome == Skipped {
			continue // a later run that filtered the spec out
		}
		latest[r.Text] = r
	}
	sum := Summary{BySig: map[string]*Counts{}}
	for _, s := range selection {
		c := sum.BySig[s.Sig()]
		if c == nil {
			c = &Counts{}
			sum.BySig[s.Sig()] = c
		}
		r, ok := latest[s.Text]
		switch {
		case !ok:
			c.NotRun++
		case r.Outcome == Passed:
			c.Passed++
		case r.Outcome == Failed:
			c.Failed++
			sum.Failures = append(sum.Failures, r)
		default:
			c.Skipped++
		}
	}
	sort.Slice(sum.Failures, func(i, j int) bool { return sum.Failures[i].Text < sum.Failures[j].Text })
	return sum
}

// Failed is the number of failed selected specs.
func (s Summary) Failed() int {
	n := 0
	for _, c := range s.BySig {
		n += c.Failed
	}
	return n
}

// Print writes the per-SIG table and the failed specs with the first line
// of their failure.
func (s Summary) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "sig\tpass\tfail\tskip\tnot run\t")
	var total Counts
	sigs := make([]string, 0, len(s.BySig))
	for sig := range s.BySig {
		sigs = append(sigs, sig)
	}
	sort.Strings(sigs)
	for _, sig := range sigs {
		c := s.BySig[sig]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", sig, c.Passed, c.Failed, c.Skipped, c.NotRun)
		total.Passed += c.Passed
		total.Failed += c.Failed
		total.Skipped += c.Skipped
		total.NotRun += c.NotRun
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%d\t\n", total.Passed, total.Failed, total.Skipped, total.NotRun)
	tw.Flush()
	if len(s.Failures) > 0 {
		fmt.Fprintf(w, "\nfailed (%d):\n", len(s.Failures))
		for _, f := range s.Failures {
			fmt.Fprintf(w, "- %s\n    %s\n", f.Text, f.Message)
		}
	}
}
