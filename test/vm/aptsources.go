package vm

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// aptSource is one entry of an apt sources file, in either format.
type aptSource struct {
	types  []string
	uris   []string
	suites []string
}

// hostMirrors returns the Debian mirror and security mirror that this
// machine's apt uses for suite, so that the VM image is built from what apt
// here already reaches. The security mirror is empty when apt here has none.
func hostMirrors(suite string) (mirror, security string, err error) {
	files := []string{"/etc/apt/sources.list"}
	for _, pattern := range []string{"*.list", "*.sources"} {
		m, err := filepath.Glob(filepath.Join("/etc/apt/sources.list.d", pattern))
		if err != nil {
			return "", "", fmt.Errorf("apt sources: %w", err)
		}
		files = append(files, m...)
	}
	var srcs []aptSource
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", "", fmt.Errorf("apt sources: %w", err)
		}
		if strings.HasSuffix(f, ".sources") {
			srcs = append(srcs, parseDeb822Sources(string(data))...)
		} else {
			srcs = append(srcs, parseOneLineSources(string(data))...)
		}
	}
	return pickMirrors(srcs, suite)
}

// pickMirrors returns the first binary ("deb") source of suite and of
// suite-security.
func pickMirrors(srcs []aptSource, suite string) (mirror, security string, err error) {
	for _, s := range srcs {
		if !slices.Contains(s.types, "deb") || len(s.uris) == 0 {
			continue
		}
		if mirror == "" && slices.Contains(s.suites, suite) {
			mirror = strings.TrimSuffix(s.uris[0], "/")
		}
		if security == "" && slices.Contains(s.suites, suite+"-security") {
			security = strings.TrimSuffix(s.uris[0], "/")
		}
	}
	if mirror == "" {
		return "", "", fmt.Errorf("apt sources: no source of suite %s: the VM image is built from the mirror this machine's apt uses", suite)
	}
	return mirror, security, nil
}

// parseOneLineSources parses the classic format:
// "deb [options] URI SUITE COMPONENT...".
func parseOneLineSources(content string) []aptSource {
	var srcs []aptSource
	for line := range strings.Lines(content) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			continue
		}
		typ, rest := fields[0], fields[1:]
		if strings.HasPrefix(rest[0], "[") {
			end := slices.IndexFunc(rest, func(f string) bool { return strings.HasSuffix(f, "]") })
			if end < 0 {
				continue
			}
			rest = rest[end+1:]
		}
		if len(rest) < 2 {
			continue
		}
		srcs = append(srcs, aptSource{types: []string{typ}, uris: rest[:1], suites: rest[1:2]})
	}
	return srcs
}

// parseDeb822Sources parses the deb822 format: paragraphs of "Field: value"
// lines separated by blank lines. Paragraphs with "Enabled: no" are left out.
func parseDeb822Sources(content string) []aptSource {
	var srcs []aptSource
	fields := map[string]string{}
	last := ""
	flush := func() {
		if len(fields) > 0 && !strings.EqualFold(fields["enabled"], "no") {
			srcs = append(srcs, aptSource{
				types:  strings.Fields(fields["types"]),
				uris:   strings.Fields(fields["uris"]),
				suites: strings.Fields(fields["suites"]),
			})
		}
		fields = map[string]string{}
		last = ""
	}
	sc := bufio.NewScanner(strings.NewReader(content))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				fields[last] += " " + strings.TrimSpace(line)
			}
		default:
			key, value, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(key))
			fields[last] = strings.TrimSpace(value)
		}
	}
	flush()
	return srcs
}
