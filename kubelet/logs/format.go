package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The CRI log format: one record a line,
//
//	<RFC 3339 timestamp> <stdout|stderr> <tags> <content>
//
// where the first tag (tags are separated by ':') is F for a full line or P
// for a part of a line the runtime split (containerd splits at 16 KiB). The
// stream names and tags are cri-api's constants.
//
// timeFormatOut is the kubelet's fixed-width RFC 3339 with nanoseconds (what
// cri-client's logs package calls RFC3339NanoFixed), so that stamped lines
// align.
const timeFormatOut = "2006-01-02T15:04:05.000000000Z07:00"

// streamIndex numbers the two streams.
const (
	stdout = 0
	stderr = 1
)

// record is one parsed line of a CRI log file.
type record struct {
	ts      time.Time
	stream  int
	partial bool
	// content is the record's text, without the line's newline.
	content []byte
}

var errMalformed = errors.New("malformed CRI log record")

// parseRecord parses one line of a CRI log file, without its newline. The
// returned content aliases line.
func parseRecord(line []byte) (record, error) {
	var rec record
	tsField, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return rec, fmt.Errorf("%w: no timestamp", errMalformed)
	}
	ts, err := time.Parse(time.RFC3339Nano, string(tsField))
	if err != nil {
		return rec, fmt.Errorf("%w: timestamp %q", errMalformed, tsField)
	}
	rec.ts = ts
	streamField, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return rec, fmt.Errorf("%w: no stream", errMalformed)
	}
	switch runtimeapi.LogStreamType(streamField) {
	case runtimeapi.Stdout:
		rec.stream = stdout
	case runtimeapi.Stderr:
		rec.stream = stderr
	default:
		return rec, fmt.Errorf("%w: stream %q", errMalformed, streamField)
	}
	tags, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		// A full empty line may come without the space before its content.
		tags, content = rest, nil
	}
	first, _, _ := bytes.Cut(tags, []byte(runtimeapi.LogTagDelimiter))
	rec.partial = runtimeapi.LogTag(first) == runtimeapi.LogTagPartial
	rec.content = content
	return rec, nil
}

// maxPending bounds how much of a split line is kept before it is written
// out: a program that never ends its line must not grow the reader without
// bound. The rest of such a line follows without a second timestamp.
const maxPending = 1 << 20

// pending is the part of a split line of one stream not yet written.
type pending struct {
	active bool
	// ts is when the line began.
	ts  time.Time
	buf []byte
	// started tells that a first piece of the line was written already.
	started bool
}

// assembler joins split records into lines and hands them to an output.
type assembler struct {
	out  *output
	pend [2]pending
}

// add takes one record; terminated tells whether its line ended with a
// newline in the file (only the very last line of a file may not).
func (a *assembler) add(rec record, terminated bool) error {
	p := &a.pend[rec.stream]
	if !p.active {
		*p = pending{active: true, ts: rec.ts, buf: p.buf[:0]}
	}
	p.buf = append(p.buf, rec.content...)
	if !rec.partial {
		if terminated {
			p.buf = append(p.buf, '\n')
		}
		err := a.out.piece(rec.stream, p.ts, p.buf, !p.started)
		p.active, p.started, p.buf = false, false, p.buf[:0]
		return err
	}
	if len(p.buf) >= maxPending {
		err := a.out.piece(rec.stream, p.ts, p.buf, !p.started)
		p.started, p.buf = true, p.buf[:0]
		return err
	}
	return nil
}

// flush writes what is left of split lines, as they are: the container
// ended without finishing them.
func (a *assembler) flush() error {
	for s := range a.pend {
		p := &a.pend[s]
		if !p.active {
			continue
		}
		if err := a.out.piece(s, p.ts, p.buf, !p.started); err != nil {
			return err
		}
		p.active, p.started, p.buf = false, false, p.buf[:0]
	}
	return nil
}

// errLimitReached stops a read once limitBytes were written.
var errLimitReached = errors.New("byte limit reached")

// output writes lines with the request's filters: the wanted streams, lines
// since a time, an optional timestamp prefix and a byte limit.
type output struct {
	w    io.Writer
	opts readOptions
	// keep says, for each stream, whether the line being written passed the
	// filters (decided at its first piece).
	keep [2]bool
	// remain is how many bytes may still be written; negative: no limit.
	remain int64
	// dirty tells that bytes were written since the last flush.
	dirty bool
	stamp []byte
}

func newOutput(w io.Writer, opts readOptions) *output {
	return &output{w: w, opts: opts, remain: opts.limit}
}

// piece writes a line or a piece of one. first tells it begins the line.
func (o *output) piece(stream int, ts time.Time, data []byte, first bool) error {
	if first {
		wanted := (stream == stdout && o.opts.stdout) || (stream == stderr && o.opts.stderr)
		o.keep[stream] = wanted && !ts.Before(o.opts.since)
		if o.keep[stream] && o.opts.timestamps {
			o.stamp = append(ts.AppendFormat(o.stamp[:0], timeFormatOut), ' ')
			if err := o.write(o.stamp); err != nil {
				return err
			}
		}
	}
	if !o.keep[stream] {
		return nil
	}
	return o.write(data)
}

func (o *output) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	limited := o.remain >= 0 && int64(len(b)) >= o.remain
	if limited {
		b = b[:o.remain]
	}
	n, err := o.w.Write(b)
	o.dirty = o.dirty || n > 0
	if o.remain >= 0 {
		o.remain -= int64(n)
	}
	if err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	if limited {
		return errLimitReached
	}
	return nil
}
