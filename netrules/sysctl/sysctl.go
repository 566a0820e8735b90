package sysctl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Root is where the kernel parameters are; tests point it elsewhere.
type Root string

// Proc is the real /proc/sys.
const Proc Root = "/proc/sys"

// path returns the file of a dotted parameter name.
func (r Root) path(name string) string {
	return filepath.Join(string(r), strings.ReplaceAll(name, ".", "/"))
}

// Get returns a parameter's value.
func (r Root) Get(name string) (string, error) {
	data, err := os.ReadFile(r.path(name))
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(data)), nil
}

// Ensure sets each parameter that does not already have its value, and
// returns the names it changed.
func (r Root) Ensure(want map[string]string) ([]string, error) {
	var changed []string
	for name, value := range want {
		got, err := r.Get(name)
		if err != nil {
			return changed, err
		}
		if got == value {
			continue
		}
		if err := os.WriteFile(r.path(name), []byte(value), 0o644); err != nil {
			return changed, fmt.Errorf("sysctl %s=%s: %w", name, value, err)
		}
		changed = append(changed, name)
	}
	return changed, nil
}
