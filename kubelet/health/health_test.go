package health

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	var podsErr error
	h := Handler([]Check{
		{Name: "node", Healthy: func() error { return nil }},
		{Name: "pod workers", Healthy: func() error { return podsErr }},
	})
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		body, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(body)
	}
	if code, body := get(); code != http.StatusOK || body != "ok" {
		t.Errorf("healthy: %d %q, want 200 ok", code, body)
	}
	podsErr = errors.New("relist stalled")
	code, body := get()
	if code != http.StatusInternalServerError || !strings.Contains(body, "[-]pod workers failed: relist stalled") || strings.Contains(body, "node failed") {
		t.Errorf("unhealthy: %d %q, want 500 naming only the failed check", code, body)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/other", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/other: %d, want 404", rec.Code)
	}
}
