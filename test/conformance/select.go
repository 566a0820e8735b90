package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Spec is one spec of the suite, as a ginkgo dry run reports it.
type Spec struct {
	// Text is the spec's full text: its containers' texts and its own,
	// joined by spaces, e.g. "[sig-node] Pods should ... [Conformance]".
	Text string
	// Labels are the ginkgo labels of the spec and its containers
	// ("Conformance", "sig-node", "Serial", ...).
	Labels []string
}

// Has tells whether the spec carries label l.
func (s Spec) Has(l string) bool { return slices.Contains(s.Labels, l) }

// Sig returns the spec's SIG ("sig-node"), from its labels, or "".
func (s Spec) Sig() string {
	for _, l := range s.Labels {
		if strings.HasPrefix(l, "sig-") {
			return l
		}
	}
	return sigOf(s.Text)
}

// Serial tells whether the spec must run alone.
func (s Spec) Serial() bool { return s.Has("Serial") || strings.Contains(s.Text, "[Serial]") }

// storageKinds are the volume kinds a node serves without a storage
// driver: the [sig-storage] specs of these are the node's, and so are the
// "Subpath Atomic writer" ones (subPath mounts of the same kinds, which the
// node's volume code serves too).
var storageKinds = regexp.MustCompile(`^\[sig-storage\] (EmptyDir|ConfigMap|Secrets|Downward API|Projected|HostPath|Subpath Atomic writer volumes) `)

// cliStreams are the [sig-cli] specs that go through the node's streaming
// server (logs, exec, port-forward); they are picked whether or not they are
// [Conformance], as port-forward has no conformance spec of its own.
var cliStreams = regexp.MustCompile(`^\[sig-cli\] Kubectl (logs |Port forwarding |client Simple pod should support (exec|port-forward|inline execution))`)

// notOnThisBed are what a one-machine bed cannot do whatever the agent:
// specs that need a cloud, several zones, or disruption of the cluster.
var notOnThisBed = []string{"Disruptive", "Flaky", "Feature:", "Slow"}

// cannotPassHere are the selected specs that fail on this bed whatever the
// node agent (the upstream kubelet fails them too), by a part of their text,
// with the reason. They are left out of the run so that the gate stays
// meaningful, and printed so that they are not forgotten.
var cannotPassHere = map[string]string{
	"[sig-node] ImageVolume should succeed with pod and pull policy of Always": "pulls its image from registry.k8s.io (pull policy Always); the bed has no registry and nothing may leave it",
}

// LeftOut returns the specs of the selection (before FOCUS and SKIP) that
// cannot pass on this bed, with the reason.
func LeftOut(specs []Spec) map[string]string {
	out := map[string]string{}
	for _, s := range specs {
		if reason, ok := cannotPass(s); ok && inSelection(s) {
			out[s.Text] = reason
		}
	}
	return out
}

// cannotPass tells whether s is one of cannotPassHere, and why.
func cannotPass(s Spec) (string, bool) {
	for part, reason := range cannotPassHere {
		if strings.Contains(s.Text, part) {
			return reason, true
		}
	}
	return "", false
}

// Filter narrows the selection as FOCUS and SKIP say.
type Filter struct {
	// Focus, if set, keeps only the specs whose text it matches.
	Focus *regexp.Regexp
	// Skip, if set, drops the specs whose text it matches.
	Skip *regexp.Regexp
}

// Select returns the node-related selection of specs (see the package
// doc) without those that cannot pass on this bed (LeftOut), narrowed by f,
// sorted by text.
func Select(specs []Spec, f Filter) []Spec {
	var out []Spec
	for _, s := range specs {
		if _, no := cannotPass(s); no || !inSelection(s) {
			continue
		}
		if f.Focus != nil && !f.Focus.MatchString(s.Text) {
			continue
		}
		if f.Skip != nil && f.Skip.MatchString(s.Text) {
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Text < out[j].Text })
	return slices.CompactFunc(out, func(a, b Spec) bool { return a.Text == b.Text })
}

// inSelection tells whether s is one of the node-related specs.
func inSelection(s Spec) bool {
	if s.Sig() == "sig-cli" && cliStreams.MatchString(s.Text) {
		return !slices.ContainsFunc(notOnThisBed, func(tag string) bool { return hasTag(s, tag) })
	}
	if !s.Has("Conformance") && !strings.Contains(s.Text, "[Conformance]") {
		return false
	}
	switch s.Sig() {
	case "sig-node", "sig-network":
		return true
	case "sig-storage":
		return storageKinds.MatchString(s.Text)
	}
	return false
}

// hasTag tells whether s carries tag as a label or as "[tag" in its text
// (a prefix: "Feature:" matches every feature).
func hasTag(s Spec, tag string) bool {
	if strings.Contains(s.Text, "["+tag) {
		return true
	}
	return slices.ContainsFunc(s.Labels, func(l string) bool { return strings.HasPrefix(l, tag) })
}

// Split separates the specs that may run in parallel from the [Serial] ones.
func Split(specs []Spec) (parallel, serial []Spec) {
	for _, s := range specs {
		if s.Serial() {
			serial = append(serial, s)
		} else {
			parallel = append(parallel, s)
		}
	}
	return parallel, serial
}

// FocusRegexp returns a ginkgo --focus expression that matches exactly the
// given specs. Ginkgo matches it against the suite's description, a space
// and the spec's text: each alternative is anchored at that space and at the
// end.
func FocusRegexp(specs []Spec) string {
	alts := make([]string, len(specs))
	for i, s := range specs {
		alts[i] = regexp.QuoteMeta(s.Text)
	}
	return " (" + strings.Join(alts, "|") + ")$"
}

// sigRE finds a spec's SIG in its text.
var sigRE = regexp.MustCompile(`\[(sig-[a-z-]+)\]`)

// sigOf returns the first "[sig-x]" of text, without brackets, or "".
func sigOf(text string) string {
	if m := sigRE.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return ""
}

// dryRunReport is the part of ginkgo's JSON report (a list of suite
// reports) that lists the specs.
type dryRunReport []struct {
	SpecReports []struct {
		ContainerHierarchyTexts  []string
		ContainerHierarchyLabels [][]string
		LeafNodeType             string
		LeafNodeText             string
		LeafNodeLabels           []string
	}
}

// ReadSpecs reads the specs from the JSON report of a ginkgo dry run.
func ReadSpecs(path string) ([]Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec list: %w", err)
	}
	var report dryRunReport
	if err := json.Unmarshal(data, &report); err != nil {
		return nil, fmt.Errorf("decode spec list %s: %w", path, err)
	}
	var specs []Spec
	for _, suite := range report {
		for _, r := range suite.SpecReports {
			if r.LeafNodeType != "It" {
				continue // suite nodes: [SynchronizedBeforeSuite], ...
			}
			texts := slices.DeleteFunc(append(slices.Clone(r.ContainerHierarchyTexts), r.LeafNodeText), func(t string) bool { return t == "" })
			labels := slices.Clone(r.LeafNodeLabels)
			for _, ls := range r.ContainerHierarchyLabels {
				labels = append(labels, ls...)
			}
			specs = append(specs, Spec{Text: strings.Join(texts, " "), Labels: labels})
		}
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("spec list %s: no specs", path)
	}
	return specs, nil
}
