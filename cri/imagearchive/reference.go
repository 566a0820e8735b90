package imagearchive

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits of the docker reference grammar.
const (
	maxNameLength = 255
	maxTagLength  = 128
)

// validateRef checks ref against the docker reference grammar
// ([domain[:port]/]component[/component...]:tag) as runtimes parse an
// archive's RepoTags. The tag is required so that what a node imports is
// exactly what a pod spec names; digests cannot be expressed in RepoTags.
func validateRef(ref string) error {
	if ref == "" {
		return errors.New("empty reference")
	}
	if strings.Contains(ref, "@") {
		return errors.New("digests are not allowed, use name:tag")
	}
	name, tag, ok := splitTag(ref)
	if !ok {
		return errors.New(`missing tag, want "name:tag"`)
	}
	if err := validateTag(tag); err != nil {
		return err
	}
	if len(name) > maxNameLength {
		return fmt.Errorf("name longer than %d characters", maxNameLength)
	}
	components := strings.Split(name, "/")
	if len(components) > 1 && looksLikeDomain(components[0]) {
		if err := validateDomain(components[0]); err != nil {
			return err
		}
		components = components[1:]
	}
	for _, c := range components {
		if err := validatePathComponent(c); err != nil {
			return err
		}
	}
	return nil
}

// splitTag splits at the last ':' that follows the last '/', so that a
// registry port ("host:5000/name") is not taken for a tag.
func splitTag(ref string) (name, tag string, ok bool) {
	i := strings.LastIndexByte(ref, ':')
	if i < 0 || i < strings.LastIndexByte(ref, '/') {
		return ref, "", false
	}
	return ref[:i], ref[i+1:], true
}

func validateTag(tag string) error {
	if tag == "" || len(tag) > maxTagLength {
		return fmt.Errorf("tag must be 1-%d characters", maxTagLength)
	}
	for i, r := range tag {
		if !isWordChar(r) && (i == 0 || (r != '.' && r != '-')) {
			return fmt.Errorf("invalid tag %q: want [A-Za-z0-9_][A-Za-z0-9_.-]*", tag)
		}
	}
	return nil
}

// looksLikeDomain follows the runtimes' rule for telling "host/name" from
// "user/name": a domain has a dot or a port, is localhost, or has capitals.
func looksLikeDomain(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost" || strings.ToLower(s) != s
}

func validateDomain(domain string) error {
	host, port, hasPort := strings.Cut(domain, ":")
	if hasPort {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return fmt.Errorf("invalid port in domain %q", domain)
		}
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("invalid domain %q", domain)
		}
		for _, r := range label {
			if !isAlnum(r) && r != '-' {
				return fmt.Errorf("invalid domain %q", domain)
			}
		}
	}
	return nil
}

// validatePathComponent accepts lowercase alphanumeric runs joined by one of
// the separators ".", "_", "__" or any number of "-".
func validatePathComponent(c string) error {
	bad := fmt.Errorf("invalid name component %q: want lowercase [a-z0-9] joined by '.', '_', '__' or '-'", c)
	if c == "" {
		return bad
	}
	sep := ""
	for i, r := range c {
		switch {
		case isLowerAlnum(r):
			if !validSeparator(sep, i) {
				return bad
			}
			sep = ""
		case r == '.' || r == '_' || r == '-':
			sep += string(r)
		default:
			return bad
		}
	}
	if sep != "" {
		return bad
	}
	return nil
}

// validSeparator reports whether sep may precede an alphanumeric at index i.
func validSeparator(sep string, i int) bool {
	switch {
	case sep == "":
		return true
	case i == len(sep): // a component cannot start with a separator
		return false
	case sep == "." || sep == "_" || sep == "__":
		return true
	default:
		return strings.Trim(sep, "-") == ""
	}
}

func isLowerAlnum(r rune) bool { return (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') }

func isAlnum(r rune) bool { return isLowerAlnum(r) || (r >= 'A' && r <= 'Z') }

func isWordChar(r rune) bool { return isAlnum(r) || r == '_' }
