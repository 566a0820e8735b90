package logs

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"
)

// Last returns the end of a container's log file, as the kubelet reads it
// for a termination message (terminationMessagePolicy
// FallbackToLogsOnError): the content of the last lines records of the
// file, at most maxBytes of it, keeping the end. Records are counted as
// `kubectl logs --tail` counts them, so each part of a split line counts;
// split lines are joined, and a last line the container never finished
// (a final P record, or a last record without its newline) is kept as it
// is, without a newline. Both streams are read; only the current file, as
// the kubelet does. A missing file reads as empty.
func Last(ctx context.Context, path string, lines int64, maxBytes int) (string, error) {
	if maxBytes <= 0 {
		return "", nil
	}
	keep := &lastBytes{max: maxBytes}
	opts := readOptions{tail: lines, limit: -1, stdout: true, stderr: true}
	r := &reader{
		src:   source{path: path},
		opts:  opts,
		flush: func() {},
		log:   klog.FromContext(ctx),
	}
	r.out = newOutput(keep, opts)
	r.asm = &assembler{out: r.out}
	f, err := r.open()
	if err != nil {
		return "", err
	}
	if err := r.run(ctx, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return string(keep.buf), nil
}

// lastBytes is a writer that keeps the last max bytes written to it.
type lastBytes struct {
	max int
	buf []byte
}

func (l *lastBytes) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= l.max {
		l.buf = append(l.buf[:0], p[len(p)-l.max:]...)
		return n, nil
	}
	if drop := len(l.buf) + len(p) - l.max; drop > 0 {
		l.buf = append(l.buf[:0], l.buf[drop:]...)
	}
	l.buf = append(l.buf, p...)
	return n, nil
}
