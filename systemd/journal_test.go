package systemd_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/systemd"
)

func TestJournalWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{
			name:   "info",
			writes: []string{"I1126 10:00:00.000000    42 main.go:1] \"Starting berth\"\n"},
			want:   "<6>I1126 10:00:00.000000    42 main.go:1] \"Starting berth\"\n",
		},
		{
			name: "each severity",
			writes: []string{
				"W1126 10:00:00.000000    42 a.go:1] careful\n",
				"E1126 10:00:00.000000    42 a.go:2] failed\n",
				"F1126 10:00:00.000000    42 a.go:3] dying\n",
			},
			want: "<4>W1126 10:00:00.000000    42 a.go:1] careful\n" +
				"<3>E1126 10:00:00.000000    42 a.go:2] failed\n" +
				"<2>F1126 10:00:00.000000    42 a.go:3] dying\n",
		},
		{
			name:   "multi-line entry keeps its priority on every line",
			writes: []string{"E1126 10:00:00.000000    42 a.go:2] \"restore failed\" lines=<\n\t-A BERTH-SVC\n\tCOMMIT\n >\n"},
			want:   "<3>E1126 10:00:00.000000    42 a.go:2] \"restore failed\" lines=<\n<3>\t-A BERTH-SVC\n<3>\tCOMMIT\n<3> >\n",
		},
		{
			name:   "line without a klog header is info",
			writes: []string{"berth: node agent failed\n", "Weird1 but not klog\n"},
			want:   "<6>berth: node agent failed\n<6>Weird1 but not klog\n",
		},
		{
			name:   "an entry split across writes",
			writes: []string{"W1126 10:00:00.000000    42 a.go:1] half", " and the rest\n", "I1126 10:00:01.000000    42 a.go:2] next\n"},
			want:   "<4>W1126 10:00:00.000000    42 a.go:1] half and the rest\n<6>I1126 10:00:01.000000    42 a.go:2] next\n",
		},
		{
			name:   "no final newline",
			writes: []string{"E1126 10:00:00.000000    42 a.go:1] cut"},
			want:   "<3>E1126 10:00:00.000000    42 a.go:1] cut",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := systemd.JournalWriter(&out)
			for _, s := range tt.writes {
				n, err := w.Write([]byte(s))
				if err != nil || n != len(s) {
					t.Fatalf("Write(%q) = %d, %v; want %d, nil", s, n, err, len(s))
				}
			}
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

// stderrStream returns $JOURNAL_STREAM as systemd would set it for this
// process's stderr.
func stderrStream(t *testing.T) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func TestStderrIsJournal(t *testing.T) {
	tests := []struct {
		name     string
		stream   string
		want     bool
		wantFail bool
	}{
		{name: "unset", stream: "", want: false},
		{name: "stderr", stream: stderrStream(t), want: true},
		{name: "another stream", stream: "1:1", want: false},
		{name: "malformed", stream: "journal", wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", tt.stream)
			got, err := systemd.StderrIsJournal()
			if got != tt.want || (err != nil) != tt.wantFail {
				t.Errorf("StderrIsJournal() = %v, %v; want %v, error %v", got, err, tt.want, tt.wantFail)
			}
		})
	}
}

// restoreKlog puts klog's settings back when the test ends: they are
// process-wide.
func restoreKlog(t *testing.T) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	saved := map[string]string{}
	// The settings LogToJournal changes.
	for _, name := range []string{"logtostderr", "alsologtostderr", "one_output", "stderrthreshold"} {
		saved[name] = fs.Lookup(name).Value.String()
	}
	t.Cleanup(func() {
		for name, value := range saved {
			if err := fs.Set(name, value); err != nil {
				t.Errorf("restoring klog -%s: %v", name, err)
			}
		}
		klog.SetOutput(os.Stderr)
	})
}

func TestLogToJournal(t *testing.T) {
	restoreKlog(t)
	var out bytes.Buffer

	t.Setenv("JOURNAL_STREAM", "")
	if ok, err := systemd.LogToJournal(&out); ok || err != nil {
		t.Fatalf("LogToJournal() without the journal = %v, %v; want false, nil", ok, err)
	}

	t.Setenv("JOURNAL_STREAM", stderrStream(t))
	if ok, err := systemd.LogToJournal(&out); !ok || err != nil {
		t.Fatalf("LogToJournal() = %v, %v; want true, nil", ok, err)
	}
	klog.Background().Info("Starting berth", "version", "v0.1.0")
	klog.Warning("careful")
	klog.Background().Error(nil, "Sync failed")
	klog.Flush()
	var prefixes []string
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		prefixes = append(prefixes, line[:4])
	}
	if diff := cmp.Diff([]string{"<6>I", "<4>W", "<3>E"}, prefixes); diff != "" {
		t.Errorf("line prefixes (-want +got):\n%s\noutput:\n%s", diff, out.String())
	}
}
