package plugins

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fsnotify/fsnotify"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// fileID tells one socket file from another at the same path: a plugin
// that restarts removes its socket and creates a new one, which may get the
// old inode number but not its change time too.
type fileID struct {
	dev, ino uint64
	ctime    syscall.Timespec
}

func idOf(fi fs.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: st.Dev, ino: st.Ino, ctime: st.Ctim}
}

// socket is the state of one registration socket path, kept by Run's loop:
// what is there (present, id, gen) and what is registered (reg).
type socket struct {
	// present says a socket file is at the path.
	present bool
	// id is the present socket file's.
	id fileID
	// gen counts the socket files seen at the path.
	gen uint64
	// reg is the registered plugin, if any.
	reg *registration
	// busy says a goroutine registers or deregisters the socket's plugin.
	busy bool
	// failures counts the failed registrations of this socket file in a row.
	failures int
	// lastErr is the last failure's message, logged again only when it
	// changes.
	lastErr string
	// retry is the pending retry's timer; the socket is not retried before
	// it fires.
	retry clock.Timer
	// retrySeq numbers the retry timers, so that a timer that fired while
	// it was being stopped is not taken for the next one.
	retrySeq uint64
}

// registration is a plugin registered with a handler, from socket file gen.
type registration struct {
	plugin  Plugin
	handler Handler
	gen     uint64
}

// loop is Run's state. Only Run's goroutine uses it.
type loop struct {
	w       *Watcher
	fsw     *fsnotify.Watcher
	sockets map[string]*socket
}

// rescan reads the whole directory: it watches every subdirectory, sees
// every socket, and forgets the sockets that are gone.
func (l *loop) rescan(ctx context.Context) error {
	if err := os.MkdirAll(l.w.cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("creating the plugin registration directory: %w", err)
	}
	found, err := l.walk(ctx, l.w.cfg.Dir)
	if err != nil {
		return err
	}
	for path, st := range l.sockets {
		if _, ok := found[path]; !ok && st.present {
			l.gone(ctx, path)
		}
	}
	return nil
}

// walk watches dir and its subdirectories and sees the sockets in them. It
// returns the sockets found. Only a failure to watch dir itself is an
// error; other problems are logged.
func (l *loop) walk(ctx context.Context, dir string) (map[string]bool, error) {
	log := klog.FromContext(ctx)
	found := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir {
				return fmt.Errorf("reading the plugin directory %s: %w", dir, err)
			}
			log.Error(err, "Reading the plugin registration directory", "path", path)
			return nil
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if err := l.fsw.Add(path); err != nil {
				if path == dir {
					return fmt.Errorf("watching the plugin directory %s: %w", dir, err)
				}
				log.Error(err, "Cannot watch a plugin registration subdirectory", "path", path)
				return filepath.SkipDir
			}
			return nil
		}
		// Stat follows a symbolic link to a socket, as the kubelet does.
		fi, err := os.Stat(path)
		if err != nil || fi.Mode()&fs.ModeSocket == 0 {
			log.V(5).Info("Ignoring a file that is not a socket", "path", path)
			return nil
		}
		found[path] = true
		l.see(ctx, path, idOf(fi))
		return nil
	})
	return found, err
}

// handleEvent follows one change in the watched directories.
func (l *loop) handleEvent(ctx context.Context, ev fsnotify.Event) error {
	log := klog.FromContext(ctx)
	log.V(6).Info("Plugin directory event", "event", ev)
	path := ev.Name
	switch {
	case ev.Has(fsnotify.Create):
		if strings.HasPrefix(filepath.Base(path), ".") {
			log.V(5).Info("Ignoring a dot-file", "path", path)
			return nil
		}
		fi, err := os.Stat(path)
		if err != nil {
			// Gone again already; its removal event follows.
			log.V(5).Info("Created and gone", "path", path, "err", err)
			return nil
		}
		switch {
		case fi.IsDir():
			_, err := l.walk(ctx, path)
			if err != nil {
				log.Error(err, "Cannot watch a plugin registration subdirectory", "path", path)
			}
		case fi.Mode()&fs.ModeSocket != 0:
			l.see(ctx, path, idOf(fi))
		default:
			log.V(5).Info("Ignoring a file that is not a socket", "path", path)
		}
	case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
		if path == l.w.cfg.Dir {
			// Somebody removed the registration directory: make it again.
			log.Info("The plugin registration directory was removed; creating it again", "dir", path)
			return l.rescan(ctx)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			// Replaced already: the new socket's creation follows, or
			// came first.
			l.see(ctx, path, idOf(fi))
			return nil
		}
		for p := range l.sockets {
			if p == path || strings.HasPrefix(p, path+string(filepath.Separator)) {
				l.gone(ctx, p)
			}
		}
	}
	return nil
}

// see notes the socket file id at path: a new plugin, or a new socket of a
// plugin that restarted, which is registered again from scratch.
func (l *loop) see(ctx context.Context, path string, id fileID) {
	st := l.sockets[path]
	if st == nil {
		st = &socket{}
		l.sockets[path] = st
	}
	if st.present && st.id == id {
		return
	}
	st.present, st.id = true, id
	l.w.setSeen(path, true)
	st.gen++
	st.failures, st.lastErr = 0, ""
	st.stopRetry()
	l.reconcile(ctx, path)
}

// gone notes that the socket at path went away.
func (l *loop) gone(ctx context.Context, path string) {
	st := l.sockets[path]
	if st == nil {
		return
	}
	st.present = false
	l.w.setSeen(path, false)
	st.stopRetry()
	l.reconcile(ctx, path)
}

func (st *socket) stopRetry() {
	if st.retry != nil {
		st.retry.Stop()
		st.retry = nil
	}
}

func (l *loop) stopTimers() {
	for _, st := range l.sockets {
		st.stopRetry()
	}
}

// reconcile starts what the socket at path needs next, unless something
// runs for it already: deregistering a plugin whose socket is gone or
// replaced, then registering a present socket's plugin.
func (l *loop) reconcile(ctx context.Context, path string) {
	st := l.sockets[path]
	switch {
	case st == nil || st.busy:
	case st.reg != nil && (!st.present || st.reg.gen != st.gen):
		reason := "socket removed"
		if st.present {
			reason = "socket replaced"
		}
		l.startDeregister(ctx, path, st, reason)
	case st.present && st.reg == nil && st.retry == nil:
		l.startRegister(ctx, path, st)
	case !st.present && st.reg == nil:
		delete(l.sockets, path)
	}
}

func (l *loop) startRegister(ctx context.Context, path string, st *socket) {
	st.busy = true
	gen := st.gen
	l.w.ops.Add(1)
	go func() {
		defer l.w.ops.Done()
		p, h, err := l.w.register(ctx, path)
		l.w.send(ctx, func() { l.registered(ctx, path, gen, p, h, err) })
	}()
}

// registered takes the outcome of registering socket file gen at path.
func (l *loop) registered(ctx context.Context, path string, gen uint64, p Plugin, h Handler, err error) {
	log := klog.FromContext(ctx).WithValues("socket", path)
	if p.Name != "" || p.Type != "" {
		log = log.WithValues("plugin", p.Name, "type", p.Type)
	}
	st := l.sockets[path]
	st.busy = false
	if err == nil {
		st.reg = &registration{plugin: p, handler: h, gen: gen}
		st.failures, st.lastErr = 0, ""
		l.w.publish(path, &p)
		log.Info("Registered plugin", "endpoint", p.Endpoint, "versions", p.Versions)
	} else if st.present && st.gen == gen {
		st.failures++
		delay := l.w.backoff(st.failures)
		// A socket that keeps failing the same way is logged when it
		// starts, then at a higher verbosity. A new socket that does not
		// listen yet is expected: a plugin binds, then listens.
		if errors.Is(err, errNotListening) && st.failures == 1 {
			log.V(2).Info("Plugin socket not listening yet", "err", err, "retryIn", delay)
		} else if msg := err.Error(); msg != st.lastErr {
			st.lastErr = msg
			log.Error(err, "Plugin registration failed", "failures", st.failures, "retryIn", delay)
		} else {
			log.V(2).Info("Plugin registration failed again", "err", err, "failures", st.failures, "retryIn", delay)
		}
		st.retrySeq++
		seq := st.retrySeq
		st.retry = l.w.cfg.Clock.AfterFunc(delay, func() {
			l.w.send(ctx, func() { l.retry(ctx, path, st, seq) })
		})
	} else {
		log.V(2).Info("Plugin registration failed; its socket changed meanwhile", "err", err)
	}
	l.reconcile(ctx, path)
}

// retry retries the socket st at path when its retry timer fires, unless
// the socket changed meanwhile.
func (l *loop) retry(ctx context.Context, path string, st *socket, seq uint64) {
	if l.sockets[path] != st || st.retry == nil || st.retrySeq != seq {
		return
	}
	st.retry = nil
	l.reconcile(ctx, path)
}

func (l *loop) startDeregister(ctx context.Context, path string, st *socket, reason string) {
	st.busy = true
	reg := st.reg
	l.w.ops.Add(1)
	go func() {
		defer l.w.ops.Done()
		reg.handler.Deregister(ctx, reg.plugin)
		l.w.send(ctx, func() {
			st.busy = false
			st.reg = nil
			l.w.publish(path, nil)
			klog.FromContext(ctx).Info("Deregistered plugin", "socket", path, "plugin", reg.plugin.Name,
				"type", reg.plugin.Type, "reason", reason)
			l.reconcile(ctx, path)
		})
	}()
}

// publish records the plugin registered at socket path, or none, for
// Plugins.
func (w *Watcher) publish(path string, p *Plugin) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p == nil {
		delete(w.registered, path)
		return
	}
	w.registered[path] = *p
}

// setSeen records whether a socket is at path, for the metrics.
func (w *Watcher) setSeen(path string, seen bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if seen {
		w.seen[path] = true
	} else {
		delete(w.seen, path)
	}
}
