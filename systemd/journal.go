package systemd

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"
	"k8s.io/klog/v2"
)

// JournalWriter returns a writer that prefixes every line written to w with
// the sd-daemon(3) syslog priority of its klog entry ("<6>" info, "<4>"
// warning, "<3>" error, "<2>" fatal), read from the severity letter that
// starts klog's header (I1126 10:00:00.000000 ...). journald strips the
// prefix and records the priority, so `journalctl -p warning` and the
// colours of journalctl work on berth's logs.
//
// Each Write is taken as whole klog entries, which is how klog writes: its
// first line sets the priority, and the further lines of a multi-line entry
// (klog's indented values) get the same prefix, because journald stores
// every line as its own record. A line without a klog header starts an
// entry at info priority. A Write that ends inside a line is continued by
// the next Write without a new prefix. Safe for concurrent use.
func JournalWriter(w io.Writer) io.Writer {
	return &journalWriter{w: w, priority: journal.PriInfo, lineStart: true}
}

// journalWriter is JournalWriter's writer.
type journalWriter struct {
	mu sync.Mutex
	w  io.Writer
	// priority is that of the entry being written.
	priority journal.Priority
	// lineStart is whether the next byte starts a line.
	lineStart bool
}

// Write implements io.Writer. It reports len(p) on success, counting only
// the caller's bytes, not the prefixes.
func (j *journalWriter) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out bytes.Buffer
	out.Grow(len(p) + 8)
	if j.lineStart {
		j.priority = klogPriority(p)
	}
	for rest := p; len(rest) > 0; {
		if j.lineStart {
			out.WriteString("<" + strconv.Itoa(int(j.priority)) + ">")
		}
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		out.Write(line)
		rest = rest[len(line):]
		j.lineStart = line[len(line)-1] == '\n'
	}
	if _, err := j.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// klogPriority maps the severity of the klog entry starting at p to a
// syslog priority: klog's header is a severity letter followed by the
// month and day (I1126).
func klogPriority(p []byte) journal.Priority {
	if len(p) < 5 {
		return journal.PriInfo
	}
	for _, c := range p[1:5] {
		if c < '0' || c > '9' {
			return journal.PriInfo
		}
	}
	switch p[0] {
	case 'W':
		return journal.PriWarning
	case 'E':
		return journal.PriErr
	case 'F':
		return journal.PriCrit
	default:
		return journal.PriInfo
	}
}

// StderrIsJournal reports whether the process's standard error is connected
// to the journal: $JOURNAL_STREAM, which systemd sets for services, names
// the device and inode of file descriptor 2.
func StderrIsJournal() (bool, error) {
	ok, err := journal.StderrIsJournalStream()
	if err != nil {
		return false, fmt.Errorf("checking $JOURNAL_STREAM: %w", err)
	}
	return ok, nil
}

// LogToJournal sends klog's output through JournalWriter(stderr) when
// standard error is the journal, and reports whether it did. Call it once,
// from main, before anything logs; klog's configuration is process-wide.
//
// klog writes straight to os.Stderr while -logtostderr is set (its
// default), ignoring klog.SetOutput. So LogToJournal turns -logtostderr off
// and hands klog the wrapped writer for every severity, once per entry
// (-one_output), with nothing copied to stderr besides it
// (-stderrthreshold=FATAL: berth never logs at fatal). The -v and -vmodule
// flags keep working. This beats a logr sink of its own: klog's text
// format, its verbosity flags and klog.FromContext stay exactly as they
// are; only the bytes gain a prefix. klog's header carries no verbosity, so
// V(n) lines are all info, not debug.
func LogToJournal(stderr io.Writer) (bool, error) {
	ok, err := StderrIsJournal()
	if err != nil || !ok {
		return false, err
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for name, value := range map[string]string{
		"logtostderr":     "false",
		"alsologtostderr": "false",
		"one_output":      "true",
		"stderrthreshold": "FATAL",
	} {
		if err := fs.Set(name, value); err != nil {
			return false, fmt.Errorf("configuring klog for the journal: -%s: %w", name, err)
		}
	}
	klog.SetOutput(JournalWriter(stderr))
	return true, nil
}
