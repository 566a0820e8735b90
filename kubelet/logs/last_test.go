package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLast(t *testing.T) {
	const ts = "2026-01-02T03:04:05.000000001Z"
	rec := func(stream, tag, content string) string {
		return fmt.Sprintf("%s %s %s %s\n", ts, stream, tag, content)
	}
	var many strings.Builder
	for i := range 100 {
		many.WriteString(rec("stdout", "F", fmt.Sprintf("line %d", i)))
	}
	tests := []struct {
		name     string
		log      string
		lines    int64
		maxBytes int
		want     string
	}{
		{
			// `echo -n DONE; false`: containerd writes the unfinished line
			// as a P record when the stream closes.
			name: "final partial line without a full record after it",
			log:  rec("stdout", "P", "DONE"),
			want: "DONE",
		},
		{
			name: "full lines, then an unfinished one",
			log:  rec("stdout", "F", "starting") + rec("stderr", "F", "oops") + rec("stdout", "P", "DONE"),
			want: "starting\noops\nDONE",
		},
		{
			name: "multi-part partial line joined",
			log:  rec("stdout", "P", "a long ") + rec("stdout", "P", "line in ") + rec("stdout", "F", "three parts") + rec("stdout", "F", "next"),
			want: "a long line in three parts\nnext\n",
		},
		{
			name: "multi-part line never finished",
			log:  rec("stdout", "F", "first") + rec("stdout", "P", "half ") + rec("stdout", "P", "done"),
			want: "first\nhalf done",
		},
		{
			name: "last record without its newline",
			log:  rec("stdout", "F", "first") + ts + " stdout F no newline",
			want: "first\nno newline",
		},
		{
			name: "interleaved streams keep their own partial lines",
			log:  rec("stdout", "P", "out-") + rec("stderr", "F", "err") + rec("stdout", "F", "line"),
			want: "err\nout-line\n",
		},
		{
			// Each part of a split line counts as a line, as the kubelet
			// counts records of the file.
			name:  "parts count as lines",
			log:   rec("stdout", "F", "dropped") + rec("stdout", "P", "kept ") + rec("stdout", "P", "as ") + rec("stdout", "P", "parts"),
			lines: 3,
			want:  "kept as parts",
		},
		{
			name:  "last 80 of 100 lines",
			log:   many.String(),
			lines: 80,
			want:  strings.Join(nLines(20, 100), "\n") + "\n",
		},
		{
			name:     "last bytes of the tail",
			log:      rec("stdout", "F", "0123456789") + rec("stdout", "P", "abcdef"),
			maxBytes: 8,
			want:     "9\nabcdef",
		},
		{
			name: "empty file",
			log:  "",
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "0.log")
			if err := os.WriteFile(path, []byte(tt.log), 0o644); err != nil {
				t.Fatal(err)
			}
			lines, maxBytes := tt.lines, tt.maxBytes
			if lines == 0 {
				lines = 80
			}
			if maxBytes == 0 {
				maxBytes = 2048
			}
			got, err := Last(context.Background(), path, lines, maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Last = %q, want %q", got, tt.want)
			}
		})
	}
}

func nLines(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("line %d", i))
	}
	return out
}

func TestLastMissingFile(t *testing.T) {
	got, err := Last(context.Background(), filepath.Join(t.TempDir(), "gone.log"), 80, 2048)
	if err != nil || got != "" {
		t.Errorf("Last of a missing file = %q, %v; want empty, nil", got, err)
	}
}

func TestLastBytesWriter(t *testing.T) {
	w := &lastBytes{max: 5}
	for _, s := range []string{"ab", "cd", "efg", "", "0123456789", "x"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := string(w.buf); got != "6789x" {
		t.Errorf("kept %q, want %q", got, "6789x")
	}
}
