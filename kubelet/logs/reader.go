package logs

import (
	"bytes"
	"cmp"
	"compress/gzip"
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

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

const (
	// readChunk is how much is read from a log file at a time.
	readChunk = 64 << 10
	// maxRecord bounds a record without a newline that is kept while
	// waiting for its end; CRI records are far shorter.
	maxRecord = 4 << 20
	// statusEvery is how many idle polls pass between two questions to the
	// runtime whether the followed container still runs.
	statusEvery = 10
)

// source is what a read needs to know about the container besides its file.
type source struct {
	// path is the container's log file.
	path string
	// running tells whether the container still runs; a follow ends once it
	// does not and its log is read to the end.
	running func(ctx context.Context) (bool, error)
}

// reader copies one container's log to an output.
type reader struct {
	src      source
	opts     readOptions
	out      *output
	asm      *assembler
	flush    func()
	clock    clock.WithTicker
	interval time.Duration
	log      klog.Logger

	// chunk is how much is read at a time; zero means readChunk.
	chunk int
	buf   []byte
	rest  []byte
}

// open opens the current log file and places it where the read starts: the
// start of the last tail lines. A missing file is no error: it reads as
// empty (the path is briefly missing while a log is rotated), and nil is
// returned.
func (r *reader) open() (*logFile, error) {
	f, err := os.Open(r.src.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat log file: %w", err)
	}
	start, err := tailOffset(f, fi.Size(), r.opts.tail)
	if err == nil {
		_, err = f.Seek(start, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tail %d lines of %s: %w", r.opts.tail, r.src.path, err)
	}
	return &logFile{f: f, rd: f}, nil
}

// logFile is one file of a container's log being read.
type logFile struct {
	f *os.File
	// rd reads f, through gzip for a compressed rotated file.
	rd io.Reader
	// name is the file's rotated name without the compression suffix,
	// once known; "" while the file is at the path, or if it was rotated
	// and compressed before it could be told apart.
	name string
	// lost tells that the file was rotated but its name could not be
	// found.
	lost bool
}

func (lf *logFile) Close() {
	if lf != nil {
		lf.f.Close()
	}
}

// run copies from lf (nil if the file did not exist yet) until the end, or,
// when following, until the container stopped and its log is drained or ctx
// ends. It closes the files it read.
func (r *reader) run(ctx context.Context, lf *logFile) error {
	err := r.copy(ctx, &lf)
	lf.Close()
	if errors.Is(err, errLimitReached) || errors.Is(err, context.Canceled) {
		err = nil
	}
	r.flush()
	return err
}

func (r *reader) copy(ctx context.Context, cur **logFile) error {
	r.buf = make([]byte, cmp.Or(r.chunk, readChunk))
	var ticker clock.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	exiting := false
	for idle := 0; ; idle++ {
		if err := r.drain(*cur); err != nil {
			return err
		}
		if !r.opts.follow {
			return r.finish()
		}
		next, err := r.successor(*cur)
		if err != nil {
			return err
		}
		if next != nil {
			// The next file has data, so the runtime is done with this
			// one: what it wrote last is read before moving on.
			if err = r.drain(*cur); err == nil {
				err = r.endFile()
			}
			if err != nil {
				next.Close()
				return err
			}
			(*cur).Close()
			*cur, idle = next, -1
			continue
		}
		if exiting {
			return r.finish()
		}
		if idle%statusEvery == 0 {
			running, err := r.src.running(ctx)
			if err != nil {
				return fmt.Errorf("container status: %w", err)
			}
			if !running {
				// One more pass: the runtime may have written the last
				// lines, or rotated, since the last read.
				exiting = true
				continue
			}
		}
		if ticker == nil {
			ticker = r.clock.NewTicker(r.interval)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C():
		}
	}
}

// drain reads lf to its end, writing every complete record, and flushes.
// When following, it notes after each chunk whether the file was rotated,
// so that a reader held back by a slow client still knows the file's
// rotated name when it finishes it.
func (r *reader) drain(lf *logFile) error {
	if lf == nil {
		return nil
	}
	defer r.flushIfDirty()
	for {
		n, err := lf.rd.Read(r.buf)
		if n > 0 {
			if err := r.feed(r.buf[:n]); err != nil {
				return err
			}
			if r.opts.follow {
				r.learnName(lf)
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read log file: %w", err)
		}
	}
}

func (r *reader) flushIfDirty() {
	if r.out.dirty {
		r.flush()
		r.out.dirty = false
	}
}

// feed splits data into records, keeping an unfinished last one for later.
func (r *reader) feed(data []byte) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			r.rest = append(r.rest, data...)
			if len(r.rest) > maxRecord {
				return r.endFile()
			}
			return nil
		}
		line := data[:i]
		if len(r.rest) > 0 {
			r.rest = append(r.rest, line...)
			line = r.rest
		}
		if err := r.record(line, true); err != nil {
			return err
		}
		r.rest = r.rest[:0]
		data = data[i+1:]
	}
	return nil
}

func (r *reader) record(line []byte, terminated bool) error {
	rec, err := parseRecord(line)
	if err != nil {
		r.log.V(2).Info("Skipping log line", "path", r.src.path, "err", err)
		return nil
	}
	return r.asm.add(rec, terminated)
}

// endFile takes a last record the file did not end with a newline as it is.
func (r *reader) endFile() error {
	if len(r.rest) == 0 {
		return nil
	}
	line := r.rest
	r.rest = r.rest[:0]
	return r.record(line, false)
}

// finish writes what is left once no more will come.
func (r *reader) finish() error {
	if err := r.endFile(); err != nil {
		return err
	}
	if err := r.asm.flush(); err != nil {
		return err
	}
	r.flushIfDirty()
	return nil
}

// learnName finds lf's rotated name once the path names another file. It
// finds it among the rotated files not compressed yet: the newest one, until
// the next rotation, which happens an interval later at the earliest.
func (r *reader) learnName(lf *logFile) {
	cur, err := lf.f.Stat()
	if err != nil {
		return
	}
	if st, err := os.Stat(r.src.path); err == nil && os.SameFile(cur, st) {
		// At the path, or back there after a rotation was undone.
		lf.name, lf.lost = "", false
		return
	}
	if lf.name != "" || lf.lost {
		return
	}
	for _, name := range rotatedFiles(r.src.path) {
		if strings.HasSuffix(name, compressSuffix) {
			continue
		}
		if fi, err := os.Stat(name); err == nil && os.SameFile(fi, cur) {
			lf.name = name
			return
		}
	}
	// Not rotated (the path is missing for a moment during a rotation, or
	// a failed one was undone), or rotated and compressed already.
	if _, err := os.Stat(r.src.path); err == nil {
		lf.lost = true
		r.log.Info("Followed log was rotated twice before it was read to its end; lines may be missing", "path", r.src.path)
	}
}

// successor returns the file to read once cur is done, if the log was
// rotated away from cur and that file has data; else nil. That is the
// rotated file that came after cur if there is one (the reader fell behind
// by more than one rotation), read through gzip if it was compressed since;
// else the file at the path.
func (r *reader) successor(cur *logFile) (*logFile, error) {
	if cur == nil {
		return openIfData(r.src.path, nil)
	}
	r.learnName(cur)
	fi, err := cur.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat open log file: %w", err)
	}
	if cur.name != "" {
		if next := rotatedAfter(r.src.path, cur, fi); next != "" {
			return openRotated(next)
		}
	}
	return openIfData(r.src.path, fi)
}

// openIfData opens path if it holds data and is not the file prev.
func openIfData(path string, prev os.FileInfo) (*logFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 || (prev != nil && os.SameFile(fi, prev)) {
		f.Close()
		return nil, nil
	}
	return &logFile{f: f, rd: f}, nil
}

// openRotated opens a rotated file, compressed or not.
func openRotated(name string) (*logFile, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open rotated log file: %w", err)
	}
	lf := &logFile{f: f, rd: f, name: strings.TrimSuffix(name, compressSuffix)}
	if strings.HasSuffix(name, compressSuffix) {
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read compressed log file %s: %w", name, err)
		}
		lf.rd = zr
	}
	return lf, nil
}

// rotatedAfter returns the rotated file (compressed or not) that follows
// cur (whose name is known and which is the file fi), or "" if none does.
// Should cur have been rotated again under a later name (a rotation undone,
// then done again), its name is updated.
func rotatedAfter(path string, cur *logFile, fi os.FileInfo) string {
	for _, next := range rotatedFiles(path) {
		plain := strings.TrimSuffix(next, compressSuffix)
		if plain <= cur.name {
			continue
		}
		if plain == next {
			if st, err := os.Stat(next); err == nil && os.SameFile(st, fi) {
				cur.name = next
				continue
			}
		}
		return next
	}
	return ""
}

// rotatedFiles lists the rotated files of path, compressed or not, oldest
// first (their names end in a sortable timestamp); never temporary ones.
func rotatedFiles(path string) []string {
	dir, base := filepath.Split(path)
	entries, err := os.ReadDir(filepath.Clean(dir))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, base+".") || strings.HasSuffix(name, tmpSuffix) || e.IsDir() {
			continue
		}
		out = append(out, filepath.Join(dir, name))
	}
	slices.SortFunc(out, func(a, b string) int {
		return strings.Compare(strings.TrimSuffix(a, compressSuffix), strings.TrimSuffix(b, compressSuffix))
	})
	return out
}
