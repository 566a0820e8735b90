package plugins

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Defaults of the Config fields left zero.
const (
	// DefaultTimeout bounds each call to a registration socket, connecting
	// included: the kubelet dials for up to 10 s.
	DefaultTimeout = 10 * time.Second
	// DefaultMinBackoff is the wait before the first retry of a socket
	// whose registration failed, as the kubelet's 500 ms.
	DefaultMinBackoff = 500 * time.Millisecond
	// DefaultMaxBackoff bounds the wait between retries, which doubles at
	// each failure.
	DefaultMaxBackoff = time.Minute
)

// RegistryDir is the registration directory of the kubelet root directory
// rootDir, where plugins create their registration sockets.
func RegistryDir(rootDir string) string {
	return filepath.Join(rootDir, "plugins_registry")
}

// PluginsDir is the directory of the kubelet root directory rootDir where
// plugins keep their own sockets and state (<root>/plugins/<driver>/...).
func PluginsDir(rootDir string) string {
	return filepath.Join(rootDir, "plugins")
}

// Config says which directory a Watcher watches and who takes the plugins.
type Config struct {
	// Dir is the registration directory, an absolute path: RegistryDir of
	// the kubelet root directory. Run creates it.
	Dir string
	// Handlers take the plugins, by plugin type (TypeCSI, TypeDevice). A
	// plugin of another type is refused, and told so. Handlers are called
	// from several goroutines at once, for different sockets; the calls for
	// one socket come one after the other.
	Handlers map[string]Handler
	// Timeout bounds each call to a registration socket, connecting
	// included: GetInfo, then NotifyRegistrationStatus. Zero means
	// DefaultTimeout. Handler calls are bounded by the handlers themselves.
	Timeout time.Duration
	// MinBackoff is the wait before retrying a socket that failed; it
	// doubles at each failure up to MaxBackoff. Zero means the default.
	MinBackoff time.Duration
	// MaxBackoff bounds the wait between retries. Zero means the default.
	MaxBackoff time.Duration
	// Clock times the retries.
	Clock clock.WithDelayedExecution
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir == "" || !filepath.IsAbs(c.Dir) {
		errs = append(errs, fmt.Errorf("config field Dir %q is not an absolute path", c.Dir))
	}
	for typ, h := range c.Handlers {
		if h == nil {
			errs = append(errs, fmt.Errorf("config field Handlers: the handler of %q is nil", typ))
		}
	}
	for name, d := range map[string]time.Duration{"Timeout": c.Timeout, "MinBackoff": c.MinBackoff, "MaxBackoff": c.MaxBackoff} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("config field %s %s is negative", name, d))
		}
	}
	if c.MinBackoff > 0 && c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff {
		errs = append(errs, fmt.Errorf("config field MinBackoff %s is above MaxBackoff %s", c.MinBackoff, c.MaxBackoff))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("config field Clock is nil"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid plugin watcher configuration: %w", err)
	}
	return nil
}

// Watcher registers the plugins whose sockets appear in the registration
// directory and deregisters them when their sockets go. Make it with New
// and run it with Run.
type Watcher struct {
	cfg Config
	// work carries the results of the per-socket goroutines and the retry
	// timers to Run's loop, which alone changes the sockets' state.
	work chan func()
	// ops counts the per-socket goroutines, which Run waits for.
	ops sync.WaitGroup

	mu sync.Mutex
	// health is nil while Run watches the directory, else why not.
	health error
	// registered are the registered plugins, by socket, for Plugins.
	registered map[string]Plugin
	// seen are the sockets in the directory, for the metrics.
	seen map[string]bool
}

// New returns a Watcher for cfg.
func New(cfg Config) (*Watcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = min(DefaultMinBackoff, cfg.MaxBackoff)
	}
	cfg.Handlers = maps.Clone(cfg.Handlers)
	return &Watcher{
		cfg:        cfg,
		work:       make(chan func()),
		health:     errors.New("plugin watcher not started"),
		registered: map[string]Plugin{},
		seen:       map[string]bool{},
	}, nil
}

// Healthy returns nil while Run watches the registration directory, having
// read it once; else why not.
func (w *Watcher) Healthy() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.health
}

func (w *Watcher) setHealth(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.health = err
}

// Plugins returns the registered plugins, ordered by socket.
func (w *Watcher) Plugins() []Plugin {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Plugin, 0, len(w.registered))
	for _, p := range w.registered {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Plugin) int { return strings.Compare(a.Socket, b.Socket) })
	return out
}

// Run creates the registration directory (mode 0750), reads it, registers
// the plugins found there and then those whose sockets appear, until ctx
// ends. It returns an error only when it cannot watch the directory.
// Plugins stay registered with their handlers when Run returns: berth is
// going down, and registers them again when it comes back. Run may be
// called again once it returned, never twice at once.
func (w *Watcher) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("plugins")
	ctx = klog.NewContext(ctx, log)
	err := w.run(ctx)
	if err != nil {
		w.setHealth(fmt.Errorf("plugin watcher stopped: %w", err))
	} else {
		w.setHealth(errors.New("plugin watcher stopped"))
	}
	return err
}

func (w *Watcher) run(ctx context.Context) error {
	log := klog.FromContext(ctx)
	if err := os.MkdirAll(w.cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("creating the plugin registration directory: %w", err)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching the plugin registration directory %s: %w", w.cfg.Dir, err)
	}
	defer func() { _ = fsw.Close() }()
	l := &loop{w: w, fsw: fsw, sockets: map[string]*socket{}}
	w.mu.Lock()
	clear(w.registered)
	clear(w.seen)
	w.mu.Unlock()
	// The per-socket goroutines end with ctx: cancel it, and wait for
	// them, however run returns.
	ctx, cancel := context.WithCancel(ctx)
	defer w.ops.Wait()
	defer cancel()
	defer l.stopTimers()
	if err := l.rescan(ctx); err != nil {
		return err
	}
	w.setHealth(nil)
	log.Info("Watching for plugin registration sockets", "dir", w.cfg.Dir, "types", slices.Sorted(maps.Keys(w.cfg.Handlers)))
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-w.work:
			f()
		case ev, ok := <-fsw.Events:
			if !ok {
				return fmt.Errorf("watching %s: the event stream ended", w.cfg.Dir)
			}
			if err := l.handleEvent(ctx, ev); err != nil {
				return err
			}
		case err, ok := <-fsw.Errors:
			if !ok {
				return fmt.Errorf("watching %s: the error stream ended", w.cfg.Dir)
			}
			// An overflow lost events: read the whole directory again.
			log.Error(err, "Watching the plugin registration directory; reading it again", "dir", w.cfg.Dir)
			if err := l.rescan(ctx); err != nil {
				return err
			}
		}
	}
}

// send hands f to Run's loop, unless ctx ended.
func (w *Watcher) send(ctx context.Context, f func()) {
	select {
	case w.work <- f:
	case <-ctx.Done():
	}
}

// backoff is the wait after the n-th failure in a row (n >= 1).
func (w *Watcher) backoff(n int) time.Duration {
	d := w.cfg.MinBackoff
	for i := 1; i < n && d < w.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, w.cfg.MaxBackoff)
}
