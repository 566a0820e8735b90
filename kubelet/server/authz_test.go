package server

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRequestAttributesSubresources(t *testing.T) {
	tests := []struct {
		path string
		want []string
	}{
		{"/stats", []string{"stats"}},
		{"/stats/", []string{"stats"}},
		{"/stats/summary", []string{"stats"}},
		{"/statsfoo", []string{"proxy"}},
		{"/metrics", []string{"metrics"}},
		{"/metrics/resource", []string{"metrics"}},
		{"/metrics/cadvisor", []string{"metrics"}},
		{"/metricsfoo", []string{"proxy"}},
		{"/logs", []string{"log"}},
		{"/logs/kern.log", []string{"log"}},
		{"/checkpoint/default/web/nginx", []string{"checkpoint"}},
		{"/pods", []string{"pods", "proxy"}},
		{"/pods/", []string{"pods", "proxy"}},
		{"/podsfoo", []string{"proxy"}},
		{"/runningpods/", []string{"pods", "proxy"}},
		{"/healthz", []string{"healthz", "proxy"}},
		{"/healthz/ping", []string{"healthz", "proxy"}},
		{"/configz", []string{"configz", "proxy"}},
		{"/statusz", []string{"statusz", "proxy"}},
		{"/exec/default/web/nginx", []string{"proxy"}},
		{"/attach/default/web/nginx", []string{"proxy"}},
		{"/portForward/default/web", []string{"proxy"}},
		{"/containerLogs/default/web/nginx", []string{"proxy"}},
		{"/run/default/web/nginx", []string{"proxy"}},
		{"/", []string{"proxy"}},
		{"", []string{"proxy"}},
		// The path the router serves is the one authorized.
		{"/stats/../exec/default/web/nginx", []string{"proxy"}},
		{"//stats/summary", []string{"stats"}},
		{"/pods/../metrics", []string{"metrics"}},
	}
	for _, tt := range tests {
		got := requestAttributes("GET", tt.path)
		if diff := cmp.Diff(tt.want, got.subresources); diff != "" {
			t.Errorf("%q subresources (-want +got):\n%s", tt.path, diff)
		}
	}
}

func TestRequestAttributesVerb(t *testing.T) {
	tests := map[string]string{
		"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update",
		"PATCH": "patch", "DELETE": "delete", "OPTIONS": "", "CONNECT": "",
	}
	for method, want := range tests {
		if got := requestAttributes(method, "/pods").verb; got != want {
			t.Errorf("%s: verb %q, want %q", method, got, want)
		}
	}
}

func TestDecisionKey(t *testing.T) {
	base := &userInfo{Name: "alice", UID: "1", Groups: []string{"a"}, Extra: map[string][]string{"x": {"1"}, "y": {"2"}}}
	k1, err := decisionKey(base, "get", "stats")
	if err != nil {
		t.Fatal(err)
	}
	same := &userInfo{Name: "alice", UID: "1", Groups: []string{"a"}, Extra: map[string][]string{"y": {"2"}, "x": {"1"}}}
	if k2, _ := decisionKey(same, "get", "stats"); k2 != k1 {
		t.Error("the same question hashes differently")
	}
	for name, tt := range map[string]struct {
		u         *userInfo
		verb, sub string
	}{
		"user":        {&userInfo{Name: "bob", UID: "1", Groups: []string{"a"}, Extra: base.Extra}, "get", "stats"},
		"group":       {&userInfo{Name: "alice", UID: "1", Groups: []string{"b"}, Extra: base.Extra}, "get", "stats"},
		"extra":       {&userInfo{Name: "alice", UID: "1", Groups: []string{"a"}}, "get", "stats"},
		"verb":        {base, "create", "stats"},
		"subresource": {base, "get", "proxy"},
	} {
		if k, _ := decisionKey(tt.u, tt.verb, tt.sub); k == k1 {
			t.Errorf("a different %s hashes the same", name)
		}
	}
}
