package staticpods

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// defaultPeriod is the kubelet's default fileCheckFrequency.
const defaultPeriod = 20 * time.Second

// maxManifestBytes bounds what is read of one manifest.
const maxManifestBytes = 10 << 20

// Config says where the static pods are and for which node.
type Config struct {
	// Dir is the directory of pod manifests (the kubelet's staticPodPath);
	// empty means the node runs no static pods.
	Dir string
	// NodeName is this node's name: static pods are named
	// <name>-<NodeName> and bound to the node.
	NodeName string
	// Period is how often the directory is read again (the kubelet's
	// fileCheckFrequency); 0 means 20 s.
	Period time.Duration
	// Clock times the reads and stamps the config.seen annotation.
	Clock clock.WithTicker
}

// Validate reports what is missing or wrong in the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir != "" && !filepath.IsAbs(c.Dir) {
		errs = append(errs, fmt.Errorf("config field Dir %q is not an absolute path", c.Dir))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("config field NodeName is empty"))
	}
	if c.Period < 0 {
		errs = append(errs, fmt.Errorf("config field Period %s is negative", c.Period))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("config field Clock is nil"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid static pod configuration: %w", err)
	}
	return nil
}

// Source reads the static pods from their directory. Make it with New and
// run it with Run; it implements pods.StaticPodSource.
type Source struct {
	cfg     Config
	decoder runtime.Decoder
	// known is the last pod read from each manifest, by path: an unchanged
	// manifest keeps its pod and its config.seen time.
	known map[string]*v1.Pod
	// bad is the last error of each manifest that failed, by path, so that
	// a broken manifest is logged when it breaks, not at every read.
	bad map[string]string
}

// New makes a static pod source from a valid configuration.
func New(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := v1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("register core/v1: %w", err)
	}
	return &Source{
		cfg:     cfg,
		decoder: serializer.NewCodecFactory(scheme).UniversalDeserializer(),
		known:   map[string]*v1.Pod{},
		bad:     map[string]string{},
	}, nil
}

// Run reads the directory now and every Period until ctx is done, and calls
// update with the complete set of static pods after the first successful
// read and after every change of the set. A directory that cannot be read
// is logged and read again later; update is not called before it was read
// once, so that the pods of a previous run are not taken for strays. Run
// returns nil when ctx is done.
func (s *Source) Run(ctx context.Context, update func(pods []*v1.Pod)) error {
	logger := klog.FromContext(ctx).WithName("staticpods").WithValues("path", s.cfg.Dir)
	ctx = klog.NewContext(ctx, logger)
	if s.cfg.Dir == "" {
		logger.V(2).Info("No static pod path; the node runs no static pods")
		update(nil)
		<-ctx.Done()
		return nil
	}
	logger.Info("Watching static pod manifests", "period", s.period())
	ticker := s.cfg.Clock.NewTicker(s.period())
	defer ticker.Stop()
	var last []string
	delivered := false
	for {
		pods, err := s.read(ctx)
		if err != nil {
			logger.Error(err, "Cannot read the static pod manifests; retrying")
		} else if uids := uidsOf(pods); !delivered || !slices.Equal(uids, last) {
			update(pods)
			delivered, last = true, uids
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		}
	}
}

func (s *Source) period() time.Duration {
	if s.cfg.Period > 0 {
		return s.cfg.Period
	}
	return defaultPeriod
}

// read returns the pods of every good manifest in the directory, in file
// name order. Only a directory that cannot be listed is an error.
func (s *Source) read(ctx context.Context) ([]*v1.Pod, error) {
	logger := klog.FromContext(ctx)
	entries, err := os.ReadDir(s.cfg.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		logger.V(4).Info("Static pod path does not exist; no static pods")
		entries, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list static pod manifests: %w", err)
	}
	var pods []*v1.Pod
	byName := map[string]string{}
	seen := map[string]bool{}
	for _, e := range entries {
		path := filepath.Join(s.cfg.Dir, e.Name())
		if !isManifestName(e.Name()) {
			logger.V(4).Info("Ignoring file that is no pod manifest", "file", path)
			continue
		}
		seen[path] = true
		pod, err := s.load(path)
		if err == nil {
			key := pod.Namespace + "/" + pod.Name
			if other, dup := byName[key]; dup {
				err = fmt.Errorf("pod %s is already defined by %s", key, other)
			} else {
				byName[key] = path
			}
		}
		if err != nil {
			s.noteBad(ctx, path, err)
			continue
		}
		delete(s.bad, path)
		pods = append(pods, pod)
	}
	for path := range s.known {
		if !seen[path] {
			delete(s.known, path)
		}
	}
	for path := range s.bad {
		if !seen[path] {
			delete(s.bad, path)
		}
	}
	return pods, nil
}

// isManifestName tells whether a directory entry is read as a manifest:
// not hidden, and ending in .yaml, .yml or .json.
func isManifestName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// load reads one manifest; a manifest whose pod did not change keeps the
// pod read before.
func (s *Source) load(path string) (*v1.Pod, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat manifest: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (mode %s); subdirectories are not read", info.Mode())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open manifest: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("manifest is larger than %d bytes", maxManifestBytes)
	}
	decoded, err := decode(s.decoder, data)
	if err != nil {
		return nil, err
	}
	pod, err := staticPod(decoded, path, s.cfg.NodeName, s.cfg.Clock.Now())
	if err != nil {
		return nil, err
	}
	if old, ok := s.known[path]; ok && old.UID == pod.UID {
		return old, nil
	}
	s.known[path] = pod
	return pod, nil
}

// noteBad logs a manifest that cannot be used, once per distinct error.
func (s *Source) noteBad(ctx context.Context, path string, err error) {
	delete(s.known, path)
	if s.bad[path] == err.Error() {
		return
	}
	s.bad[path] = err.Error()
	klog.FromContext(ctx).Error(err, "Skipping static pod manifest", "file", path)
}

// uidsOf returns the pods' UIDs, sorted.
func uidsOf(pods []*v1.Pod) []string {
	out := make([]string, 0, len(pods))
	for _, p := range pods {
		out = append(out, string(p.UID))
	}
	slices.Sort(out)
	return out
}
