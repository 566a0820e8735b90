package logs

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/cri"
)

const (
	// rotatedFormat is the UTC timestamp a rotated file's name ends with:
	// names sort in the order the files were rotated.
	rotatedFormat = "20060102-150405"
	// compressSuffix ends the name of a compressed rotated file.
	compressSuffix = ".gz"
	// tmpSuffix ends the name of a file being compressed.
	tmpSuffix = ".tmp"
	// DefaultRotateInterval is the kubelet's default
	// containerLogMonitorInterval.
	DefaultRotateInterval = 10 * time.Second
)

// ParseSize parses a containerLogMaxSize quantity such as "10Mi" into bytes.
func ParseSize(s string) (int64, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("container log max size %q: %w", s, err)
	}
	n, ok := q.AsInt64()
	if !ok || n <= 0 {
		return 0, fmt.Errorf("container log max size %q: must be a positive number of bytes", s)
	}
	return n, nil
}

// Config configures the Rotator.
type Config struct {
	// Runtime is the CRI runtime service that writes the logs.
	Runtime internalapi.RuntimeService
	// MaxSize is the size in bytes (containerLogMaxSize) above which a
	// container's log is rotated.
	MaxSize int64
	// MaxFiles is how many files (containerLogMaxFiles, at least 2) a
	// container's log may have, the current one included.
	MaxFiles int
	// Interval is how often logs are checked (containerLogMonitorInterval);
	// zero means DefaultRotateInterval.
	Interval time.Duration
	// Clock ticks the checks and stamps rotated files; nil means the real
	// clock.
	Clock clock.WithTicker
}

// Validate reports every problem of c.
func (c *Config) Validate() error {
	var errs []error
	if c.Runtime == nil {
		errs = append(errs, errors.New("runtime: required"))
	}
	if c.MaxSize <= 0 {
		errs = append(errs, fmt.Errorf("max size %d: must be positive", c.MaxSize))
	}
	if c.MaxFiles < 2 {
		errs = append(errs, fmt.Errorf("max files %d: must be at least 2", c.MaxFiles))
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval %v: must not be negative", c.Interval))
	}
	return errors.Join(errs...)
}

// Rotator rotates the logs of running containers; see the package
// documentation.
type Rotator struct {
	cfg Config
	// logPaths caches each running container's log path (it never
	// changes), so that a check of 100 idle containers is one
	// ListContainers and 100 stats, not 100 ContainerStatus calls. Only
	// Run's goroutine uses it.
	logPaths map[string]string
}

// NewRotator returns a Rotator for cfg.
func NewRotator(cfg Config) (*Rotator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("container log rotation config: %w", err)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultRotateInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Rotator{cfg: cfg, logPaths: map[string]string{}}, nil
}

// Run checks the logs every interval until ctx ends, then returns nil.
// Failures are logged and tried again at the next check.
func (r *Rotator) Run(ctx context.Context) error {
	ticker := r.cfg.Clock.NewTicker(r.cfg.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
			r.rotateAll(ctx)
		}
	}
}

// rotateAll rotates the log of every running container that outgrew
// MaxSize. One container failing does not stop the others.
func (r *Rotator) rotateAll(ctx context.Context) {
	log := klog.FromContext(ctx)
	containers, err := r.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	})
	if err != nil {
		log.Error(err, "Listing containers to rotate their logs failed")
		return
	}
	running := make(map[string]bool, len(containers))
	for _, c := range containers {
		running[c.Id] = true
	}
	for id := range r.logPaths {
		if !running[id] {
			delete(r.logPaths, id)
		}
	}
	for _, c := range containers {
		if ctx.Err() != nil {
			return
		}
		if err := r.rotateContainer(ctx, c.Id); err != nil {
			log.Error(err, "Rotating container log failed", "containerID", c.Id,
				"pod", klog.KRef(c.Labels[cri.LabelPodNamespace], c.Labels[cri.LabelPodName]),
				"container", c.Labels[cri.LabelContainerName])
		}
	}
}

func (r *Rotator) rotateContainer(ctx context.Context, id string) error {
	path, ok := r.logPaths[id]
	if !ok {
		resp, err := r.cfg.Runtime.ContainerStatus(ctx, id, false)
		if err != nil {
			return fmt.Errorf("container status: %w", err)
		}
		if resp.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			return nil
		}
		path = resp.GetStatus().GetLogPath()
		r.logPaths[id] = path
	}
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		// A rotation that could not be undone, or a file removed by hand:
		// have the runtime write a new one.
		if err := r.cfg.Runtime.ReopenContainerLog(ctx, id); err != nil {
			return fmt.Errorf("reopen missing log %s: %w", path, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat log: %w", err)
	}
	if fi.Size() < r.cfg.MaxSize {
		return nil
	}
	return r.rotate(ctx, id, path)
}

// rotate rotates the log at path of container id: it makes room for one
// more rotated file, compresses the rotated files, renames the current file
// and has the runtime reopen it, renaming it back if that fails.
func (r *Rotator) rotate(ctx context.Context, id, path string) error {
	rotated, err := r.prune(path)
	if err != nil {
		return err
	}
	for _, name := range rotated {
		if strings.HasSuffix(name, compressSuffix) {
			continue
		}
		if err := compress(name); err != nil {
			return err
		}
	}
	target := path + "." + r.cfg.Clock.Now().UTC().Format(rotatedFormat)
	if _, err := os.Lstat(target); err == nil {
		return fmt.Errorf("rotate %s: %s exists already (rotated twice within a second)", path, target)
	}
	if err := os.Rename(path, target); err != nil {
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	if err := r.cfg.Runtime.ReopenContainerLog(ctx, id); err != nil {
		if rerr := os.Rename(target, path); rerr != nil {
			return fmt.Errorf("reopen container log: %w; renaming %s back failed: %w", err, target, rerr)
		}
		return fmt.Errorf("reopen container log: %w", err)
	}
	return nil
}

// prune removes leftovers of interrupted compressions and the oldest
// rotated files, keeping MaxFiles-2 so that, with the file about to be
// rotated and the new current one, MaxFiles remain. It returns the rotated
// files kept, oldest first.
func (r *Rotator) prune(path string) ([]string, error) {
	var kept []string
	all := rotatedFiles(path)
	dir := listDir(path)
	for _, name := range all {
		if !strings.HasSuffix(name, compressSuffix) && dir[name+compressSuffix] {
			// Compressed already; the original outlived an interruption.
			if err := os.Remove(name); err != nil {
				return nil, fmt.Errorf("remove compressed log %s: %w", name, err)
			}
			continue
		}
		kept = append(kept, name)
	}
	for name := range dir {
		if strings.HasSuffix(name, tmpSuffix) {
			if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("remove unfinished compression %s: %w", name, err)
			}
		}
	}
	excess := len(kept) - (r.cfg.MaxFiles - 2)
	for i := 0; i < excess; i++ {
		if err := os.Remove(kept[i]); err != nil {
			return nil, fmt.Errorf("remove old log %s: %w", kept[i], err)
		}
	}
	return kept[max(excess, 0):], nil
}

// listDir returns the set of files in path's directory that belong to it
// (path.*), by full name.
func listDir(path string) map[string]bool {
	out := map[string]bool{}
	dir, base := filepath.Split(path)
	entries, err := os.ReadDir(filepath.Clean(dir))
	if err != nil {
		return out
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), base+".") {
			out[filepath.Join(dir, e.Name())] = true
		}
	}
	return out
}

// compress replaces name by name.gz, writing through name.tmp so that an
// interrupted compression leaves nothing that looks finished. It does not
// use kubelet/atomicfile: the temporary file's name must be known (prune
// removes a leftover name.tmp after a crash, as it lists only the log's
// own files), and no fsync is needed, since the uncompressed original stays
// until the .gz is in place.
func compress(name string) (err error) {
	in, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("compress %s: %w", name, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("compress %s: %w", name, err)
	}
	tmp := name + tmpSuffix
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return fmt.Errorf("compress %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		return fmt.Errorf("compress %s: %w", name, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress %s: %w", name, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("compress %s: %w", name, err)
	}
	if err := os.Rename(tmp, name+compressSuffix); err != nil {
		return fmt.Errorf("compress %s: %w", name, err)
	}
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("remove compressed %s: %w", name, err)
	}
	return nil
}
