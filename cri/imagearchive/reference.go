package imagearchive

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/distribution/reference"
)

// validateRef checks ref against the docker reference grammar
// ([domain[:port]/]component[/component...]:tag, as runtimes parse an
// archive's RepoTags) with github.com/distribution/reference. The tag is
// required so that what a node imports is exactly what a pod spec names;
// digests cannot be expressed in RepoTags.
func validateRef(ref string) error {
	if ref == "" {
		return errors.New("empty reference")
	}
	parsed, err := reference.Parse(ref)
	if err != nil {
		return err
	}
	if _, ok := parsed.(reference.Digested); ok {
		return errors.New("digests are not allowed, use name:tag")
	}
	named, ok := parsed.(reference.Named)
	if !ok {
		return errors.New("no name")
	}
	if _, ok := parsed.(reference.Tagged); !ok {
		return errors.New(`missing tag, want "name:tag"`)
	}
	// distribution/reference v0.6 holds only the path to the 255-character
	// limit; the grammar's older rule, which docker/distribution v2 and the
	// runtimes' copies of it apply, holds the whole name, domain included.
	// The stricter rule keeps an archive importable by either.
	if len(named.Name()) > reference.RepositoryNameTotalLengthMax {
		return fmt.Errorf("name longer than %d characters", reference.RepositoryNameTotalLengthMax)
	}
	return validateDomainPort(reference.Domain(named))
}

// validateDomainPort checks the port of a reference's domain, if it has one. The
// grammar (and so distribution/reference) takes any run of digits for a
// port; a registry cannot listen on port 0 or above 65535, and a leading
// zero would name the same registry two ways, so such names are refused
// here.
func validateDomainPort(domain string) error {
	i := strings.LastIndexByte(domain, ':')
	if i < 0 || strings.HasSuffix(domain, "]") {
		return nil
	}
	port := domain[i+1:]
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
		return fmt.Errorf("invalid port in domain %q", domain)
	}
	return nil
}
