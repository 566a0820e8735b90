package logs

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestParseRecord(t *testing.T) {
	ts := time.Date(2016, 10, 6, 0, 17, 9, 669794202, time.UTC)
	tests := []struct {
		line    string
		want    record
		wantErr bool
	}{
		{line: "2016-10-06T00:17:09.669794202Z stdout F log content 1",
			want: record{ts: ts, stream: stdout, content: []byte("log content 1")}},
		{line: "2016-10-06T00:17:09.669794202Z stderr P part ",
			want: record{ts: ts, stream: stderr, partial: true, content: []byte("part ")}},
		{line: "2016-10-06T00:17:09.669794202Z stdout F ",
			want: record{ts: ts, stream: stdout, content: []byte{}}},
		{line: "2016-10-06T00:17:09.669794202Z stdout F",
			want: record{ts: ts, stream: stdout}},
		{line: "2016-10-06T00:17:09.669794202Z stdout P:x:y tagged",
			want: record{ts: ts, stream: stdout, partial: true, content: []byte("tagged")}},
		{line: "2016-10-06T00:17:09Z stdout F  two spaces",
			want: record{ts: ts.Truncate(time.Second), stream: stdout, content: []byte(" two spaces")}},
		{line: "2016-10-06T02:17:09.669794202+02:00 stdout F zone",
			want: record{ts: ts, stream: stdout, content: []byte("zone")}},
		{line: "garbage", wantErr: true},
		{line: "yesterday stdout F x", wantErr: true},
		{line: "2016-10-06T00:17:09Z stdin F x", wantErr: true},
		{line: "2016-10-06T00:17:09Z stdout", wantErr: true},
		{line: `{"log":"docker json","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := parseRecord([]byte(tt.line))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if !got.ts.Equal(tt.want.ts) {
				t.Errorf("timestamp %v, want %v", got.ts, tt.want.ts)
			}
			got.ts, tt.want.ts = time.Time{}, time.Time{}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(record{}), cmp.Comparer(bytes.Equal)); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTailOffset(t *testing.T) {
	tests := []struct {
		name    string
		content string
		n       int64
		want    int64
	}{
		{name: "all", content: "a\nb\n", n: -1, want: 0},
		{name: "none", content: "a\nb\n", n: 0, want: 4},
		{name: "last", content: "a\nb\n", n: 1, want: 2},
		{name: "both", content: "a\nb\n", n: 2, want: 0},
		{name: "more than there are", content: "a\nb\n", n: 5, want: 0},
		{name: "unterminated last line counts", content: "a\nb\nc", n: 1, want: 4},
		{name: "unterminated two", content: "a\nb\nc", n: 2, want: 2},
		{name: "empty lines count", content: "a\n\n\n", n: 2, want: 2},
		{name: "empty file", content: "", n: 3, want: 0},
		{name: "across blocks", content: strings.Repeat("x", tailBlock+10) + "\n" + strings.Repeat("y", tailBlock) + "\nz\n",
			n: 2, want: int64(tailBlock + 11)},
		{name: "line longer than a block", content: "a\n" + strings.Repeat("y", 3*tailBlock) + "\n", n: 1, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tailOffset(strings.NewReader(tt.content), int64(len(tt.content)), tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("tailOffset(%d) = %d, want %d", tt.n, got, tt.want)
			}
		})
	}
}

func TestParseQuery(t *testing.T) {
	since := metav1.NewTime(time.Date(2024, 1, 2, 15, 4, 5, 0, time.UTC))
	tests := []struct {
		query   string
		want    *v1.PodLogOptions
		wantErr bool
	}{
		{query: "", want: &v1.PodLogOptions{}},
		{query: "follow=true&previous=1&timestamps", want: &v1.PodLogOptions{Follow: true, Previous: true, Timestamps: true}},
		{query: "follow=false&previous=0&timestamps=FALSE", want: &v1.PodLogOptions{}},
		{query: "follow=yes", want: &v1.PodLogOptions{Follow: true}},
		{query: "tailLines=10&limitBytes=100&sinceSeconds=60",
			want: &v1.PodLogOptions{TailLines: ptr.To[int64](10), LimitBytes: ptr.To[int64](100), SinceSeconds: ptr.To[int64](60)}},
		{query: "tail=5&tailLines=10", want: &v1.PodLogOptions{TailLines: ptr.To[int64](5)}},
		{query: "tail=all&tailLines=10", want: &v1.PodLogOptions{}},
		{query: "tail=&tailLines=10", want: &v1.PodLogOptions{TailLines: ptr.To[int64](10)}},
		{query: "sinceTime=2024-01-02T15:04:05Z", want: &v1.PodLogOptions{SinceTime: &since}},
		{query: "stream=Stderr&container=app", want: &v1.PodLogOptions{Stream: ptr.To("Stderr"), Container: "app"}},
		{query: "tailLines=ten", wantErr: true},
		{query: "limitBytes=1.5", wantErr: true},
		{query: "sinceSeconds=1h", wantErr: true},
		{query: "sinceTime=2024-01-02", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseQuery(q)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLongLineIsBounded writes a split line longer than maxPending: it comes
// out whole, with one timestamp.
func TestLongLineIsBounded(t *testing.T) {
	var buf bytes.Buffer
	out := newOutput(&buf, readOptions{timestamps: true, tail: -1, limit: -1, stdout: true, stderr: true})
	a := &assembler{out: out}
	ts := time.Date(2024, 1, 2, 15, 4, 5, 0, time.UTC)
	part := bytes.Repeat([]byte("x"), 16<<10)
	parts := 2*maxPending/len(part) + 1
	for i := 0; i < parts; i++ {
		if err := a.add(record{ts: ts.Add(time.Duration(i)), partial: true, content: part}, true); err != nil {
			t.Fatal(err)
		}
		if len(a.pend[stdout].buf) > maxPending {
			t.Fatalf("pending line grew to %d bytes", len(a.pend[stdout].buf))
		}
	}
	if err := a.add(record{ts: ts.Add(time.Hour), content: []byte("end")}, true); err != nil {
		t.Fatal(err)
	}
	want := "2024-01-02T15:04:05.000000000Z " + strings.Repeat("x", parts*len(part)) + "end\n"
	if got := buf.String(); got != want {
		t.Errorf("got %d bytes starting %q, want %d bytes", len(got), got[:40], len(want))
	}
}
