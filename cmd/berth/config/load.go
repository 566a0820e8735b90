package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Load reads the configuration file at path, decodes it strictly, fills
// every unset field with its default and validates the result. All errors
// name the file; validation errors list every problem with its field path.
func Load(path string) (*Config, error) {
	return load(path, os.Hostname)
}

// load is Load with the hostname lookup injected, so tests do not depend on
// the machine they run on.
func load(path string, hostname func() (string, error)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// The *fs.PathError already names the file.
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	cfg, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cfg.NodeName == "" {
		if cfg.NodeName, err = defaultNodeName(hostname); err != nil {
			return nil, fmt.Errorf("%s: defaulting nodeName: %w", path, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// decode parses the file's YAML document onto the defaults, so that fields
// the document leaves out keep their default values while fields it sets, even
// to false or "", win. apiVersion and kind have no default: a document must
// say what it is.
//
// YAML is converted to JSON without looking at the target type, so a number
// given for a string is an error instead of being quoted silently; the JSON
// is then decoded case-sensitively, collecting every unknown and duplicate
// field instead of stopping at the first.
func decode(data []byte) (*Config, error) {
	jsonData, err := singleDocument(data)
	if err != nil {
		return nil, err
	}
	cfg := Default()
	cfg.APIVersion, cfg.Kind = "", ""
	strictErrs, err := kjson.UnmarshalStrict(jsonData, cfg)
	if err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("decoding: %w", utilerrors.NewAggregate(strictErrs))
	}
	return cfg, nil
}

// singleDocument returns the file's only YAML document as JSON, or JSON null
// when the file holds none. Empty and comment-only documents (a leading
// "---", say) are skipped, but a second document with content is an error:
// decoding only the first would ignore the rest silently.
func singleDocument(data []byte) ([]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	doc := []byte("null")
	for count := 0; ; {
		chunk, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return doc, nil
		}
		if err != nil {
			return nil, fmt.Errorf("splitting YAML documents: %w", err)
		}
		// YAMLToJSONStrict rejects keys repeated in one YAML mapping.
		jsonChunk, err := yaml.YAMLToJSONStrict(chunk)
		if err != nil {
			return nil, fmt.Errorf("parsing YAML: %w", err)
		}
		if string(jsonChunk) == "null" {
			continue
		}
		if count++; count > 1 {
			return nil, errors.New("more than one YAML document; a configuration file holds exactly one")
		}
		doc = jsonChunk
	}
}

// defaultNodeName derives the node name from the hostname the way kubelet
// does without --hostname-override: trimmed and lowercased.
func defaultNodeName(hostname func() (string, error)) (string, error) {
	name, err := hostname()
	if err != nil {
		return "", fmt.Errorf("looking up the hostname: %w", err)
	}
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		return "", errors.New("the hostname is empty; set nodeName")
	}
	return name, nil
}

// HostnameNodeName returns the node name kubelet would use without
// --hostname-override: the hostname, trimmed and lowercased.
func HostnameNodeName() (string, error) {
	return defaultNodeName(os.Hostname)
}
