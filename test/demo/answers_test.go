package demo

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		out     string
		want    map[string]int
		wantErr string
	}{
		{
			name: "three pods",
			out: "echo-7c9-abc 192.168.200.11:40001\n" +
				"echo-7c9-def 10.244.1.1:40002\n" +
				"echo-7c9-ghi 192.168.200.11:40003\n" +
				"echo-7c9-abc [fd00::1]:40004\n",
			want: map[string]int{"echo-7c9-abc": 2, "echo-7c9-def": 1, "echo-7c9-ghi": 1},
		},
		{name: "no answer", out: "", want: map[string]int{}},
		{name: "no final newline", out: "echo-1 10.0.0.1:1", want: map[string]int{"echo-1": 1}},
		{name: "an empty line among answers", out: "echo-1 10.0.0.1:1\n\necho-2 10.0.0.1:2\n", wantErr: `answer 2 ""`},
		{name: "another program's output", out: "healthy: true\n", wantErr: `answer 1 "healthy: true"`},
		{name: "no client port", out: "echo-1 10.0.0.1\n", wantErr: "client address"},
		{name: "three words", out: "echo-1 10.0.0.1:1 extra\n", wantErr: `want "POD CLIENT_IP:PORT"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAnswers(tc.out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseAnswers(%q) = %v, %v; want an error with %q", tc.out, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseAnswers(%q) (-want +got):\n%s", tc.out, diff)
			}
		})
	}
}

func TestWriteCounts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		counts map[string]int
		want   string
	}{
		{
			name:   "round-robin",
			counts: map[string]int{"echo-b": 10, "echo-a": 10, "echo-c": 10},
			want: "POD      ANSWERS\n" +
				"echo-a   10\n" +
				"echo-b   10\n" +
				"echo-c   10\n" +
				"Round-robin: each new connection went to the next pod in turn, 10 of 30 to each pod.\n",
		},
		{
			name:   "round-robin, not divisible",
			counts: map[string]int{"echo-a": 11, "echo-b": 10, "echo-c": 10},
			want: "POD      ANSWERS\n" +
				"echo-a   11\n" +
				"echo-b   10\n" +
				"echo-c   10\n" +
				"Round-robin: each new connection went to the next pod in turn, 10 or 11 of 31 to each pod.\n",
		},
		{
			name:   "uneven",
			counts: map[string]int{"echo-a": 12, "echo-b": 10, "echo-c": 8},
			want: "POD      ANSWERS\n" +
				"echo-a   12\n" +
				"echo-b   10\n" +
				"echo-c   8\n" +
				"Not round-robin: the 30 answers are spread unevenly over the 3 pods.\n",
		},
		{
			name:   "a pod missing",
			counts: map[string]int{"echo-a": 15, "echo-b": 15},
			want: "POD      ANSWERS\n" +
				"echo-a   15\n" +
				"echo-b   15\n" +
				"2 of the 3 pods answered: not every pod is in the rules.\n",
		},
		{
			name:   "a pod too many",
			counts: map[string]int{"echo-a": 8, "echo-b": 8, "echo-c": 7, "echo-d": 7},
			want: "POD      ANSWERS\n" +
				"echo-a   8\n" +
				"echo-b   8\n" +
				"echo-c   7\n" +
				"echo-d   7\n" +
				"4 pods answered, not 3: the rules hold pods the Deployment no longer has.\n",
		},
		{name: "none", counts: map[string]int{}, want: "POD   ANSWERS\nNo pod answered.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteCounts(&b, tc.counts, 3); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, b.String()); diff != "" {
				t.Errorf("WriteCounts(%v) (-want +got):\n%s", tc.counts, diff)
			}
		})
	}
}
