package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// The sources of a KubeletConfiguration field, as named in Conflicts.
const (
	SourceFile     = "kubelet configuration file"
	SourceFlag     = "kubelet flag"
	SourceFallback = "berth configuration"
)

// Fallbacks are berth's own settings of KubeletConfiguration fields (its
// config.yaml). They are the lowest source but for the defaults: used only
// where neither the kubelet's file nor a flag sets the field, so that a
// node kubeadm configured keeps kubeadm's value. Empty means not set.
type Fallbacks struct {
	// ContainerRuntimeEndpoint is berth's kubelet.containerRuntimeEndpoint.
	ContainerRuntimeEndpoint string
}

// Conflict is a field two sources set to different values; Used is the one
// that counts.
type Conflict struct {
	// Field is the field's JSON path, e.g. "containerRuntimeEndpoint".
	Field string
	// Used and UsedFrom are the value that counts and its source; Ignored
	// and IgnoredFrom the one it overrides.
	Used, UsedFrom       string
	Ignored, IgnoredFrom string
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s: %s %s overrides %s %s", c.Field, c.UsedFrom, c.Used, c.IgnoredFrom, c.Ignored)
}

// Compose reads the KubeletConfiguration file at path and builds the
// kubelet's configuration from its sources, one value per field, in
// rising precedence, as kubelet does:
//
//  1. upstream kubelet's defaults;
//  2. fb, berth's own settings, for a field neither source below sets;
//  3. the file;
//  4. the flags given (kubeadm-flags.env, then the command line with
//     KUBELET_EXTRA_ARGS: the later wins).
//
// A flag not given never overrides the file, and a default never overrides
// a value given. Every field set by two sources to different values is
// returned as a Conflict, for the caller to log.
func Compose(path string, flags Flags, fb Fallbacks) (*KubeletConfiguration, []Conflict, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read kubelet configuration: %w", err)
	}
	cfg, err := decode(data)
	if err != nil {
		return nil, nil, fmt.Errorf("kubelet configuration %s: %w", path, err)
	}
	var fileFields map[string]any
	if err := yaml.Unmarshal(data, &fileFields); err != nil {
		return nil, nil, fmt.Errorf("kubelet configuration %s: %w", path, err)
	}
	conflicts, err := applyFlags(cfg, fileFields, flags)
	if err != nil {
		return nil, nil, err
	}
	if fb.ContainerRuntimeEndpoint != "" {
		switch {
		case cfg.ContainerRuntimeEndpoint == "":
			cfg.ContainerRuntimeEndpoint = fb.ContainerRuntimeEndpoint
		case cfg.ContainerRuntimeEndpoint != fb.ContainerRuntimeEndpoint:
			from := SourceFile
			if _, ok := flags.Overrides["container-runtime-endpoint"]; ok {
				from = SourceFlag + " --container-runtime-endpoint"
			}
			conflicts = append(conflicts, Conflict{
				Field: "containerRuntimeEndpoint",
				Used:  cfg.ContainerRuntimeEndpoint, UsedFrom: from,
				Ignored: fb.ContainerRuntimeEndpoint, IgnoredFrom: SourceFallback + " kubelet.containerRuntimeEndpoint",
			})
		}
	}
	SetDefaults(cfg)
	return cfg, conflicts, nil
}

// applyFlags writes the flags given over cfg, the file's configuration
// before defaults, and returns the fields the file set otherwise.
func applyFlags(cfg *KubeletConfiguration, fileFields map[string]any, flags Flags) ([]Conflict, error) {
	fromFile, err := asDocument(cfg)
	if err != nil {
		return nil, err
	}
	if err := flags.Apply(cfg); err != nil {
		return nil, err
	}
	composed, err := asDocument(cfg)
	if err != nil {
		return nil, err
	}
	var conflicts []Conflict
	for _, name := range slices.Sorted(maps.Keys(flags.Overrides)) {
		path := fieldFlags[name].path
		if _, inFile := lookup(fileFields, path); !inFile {
			continue
		}
		// Both sides as the typed configuration encodes them: "1m" in
		// the file and --sync-frequency=60s agree.
		was, _ := lookup(fromFile, path)
		now, _ := lookup(composed, path)
		if !reflect.DeepEqual(was, now) {
			conflicts = append(conflicts, Conflict{
				Field: strings.Join(path, "."),
				Used:  fmt.Sprint(now), UsedFrom: SourceFlag + " --" + name,
				Ignored: fmt.Sprint(was), IgnoredFrom: SourceFile,
			})
		}
	}
	return conflicts, nil
}

// lookup returns the value at path in a decoded document.
func lookup(doc map[string]any, path []string) (any, bool) {
	var cur any = doc
	for _, key := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[key]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// asDocument returns cfg as a decoded JSON document.
func asDocument(cfg *KubeletConfiguration) (map[string]any, error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode kubelet configuration: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode kubelet configuration: %w", err)
	}
	return doc, nil
}
