package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// hangPoll is how often a hanging call looks whether its .hang file is gone.
const hangPoll = 50 * time.Millisecond

// control records calls and injects faults through files in dir.
type control struct {
	dir string
	mu  sync.Mutex // serialises appends
}

// callRecord is one line of calls.jsonl.
type callRecord struct {
	Time              time.Time `json:"time"`
	Method            string    `json:"method"`
	VolumeID          string    `json:"volume_id,omitempty"`
	StagingTargetPath string    `json:"staging_target_path,omitempty"`
	TargetPath        string    `json:"target_path,omitempty"`
	VolumePath        string    `json:"volume_path,omitempty"`
	Code              string    `json:"code"`
	Error             string    `json:"error,omitempty"`
	DurationMS        float64   `json:"duration_ms"`
}

// intercept is the CSI server's interceptor: fault files first, then the
// handler, then a line in calls.jsonl.
func (c *control) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	method := path.Base(info.FullMethod)
	resp, err := c.fault(ctx, method)
	if err == nil {
		resp, err = callSafely(ctx, handler, req)
	}
	rec := callRecord{
		Time:       start,
		Method:     method,
		Code:       status.Code(err).String(),
		DurationMS: float64(time.Since(start).Microseconds()) / 1000,
	}
	if err != nil {
		rec.Error = status.Convert(err).Message()
	}
	if r, ok := req.(interface{ GetVolumeId() string }); ok {
		rec.VolumeID = r.GetVolumeId()
	}
	if r, ok := req.(interface{ GetStagingTargetPath() string }); ok {
		rec.StagingTargetPath = r.GetStagingTargetPath()
	}
	if r, ok := req.(interface{ GetTargetPath() string }); ok {
		rec.TargetPath = r.GetTargetPath()
	}
	if r, ok := req.(interface{ GetVolumePath() string }); ok {
		rec.VolumePath = r.GetVolumePath()
	}
	c.appendLine("calls.jsonl", rec)
	klog.FromContext(ctx).V(2).Info("CSI call", "method", method, "volumeID", rec.VolumeID, "code", rec.Code, "err", rec.Error)
	return resp, err
}

// callSafely calls handler, turning a panic of the mock into an Internal
// error: a gRPC server does not recover panics, and one would end the
// whole driver.
func callSafely(ctx context.Context, handler grpc.UnaryHandler, req any) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			klog.FromContext(ctx).Error(nil, "Mock driver panicked", "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "mock driver panicked: %v", r)
		}
	}()
	return handler(ctx, req)
}

// fault applies <method>.fail and <method>.hang: an error for the first,
// blocking while the second exists.
func (c *control) fault(ctx context.Context, method string) (any, error) {
	if msg, err := os.ReadFile(filepath.Join(c.dir, method+".fail")); err == nil {
		return nil, status.Error(codes.Internal, strings.TrimSpace(string(msg)))
	}
	hang := filepath.Join(c.dir, method+".hang")
	if _, err := os.Stat(hang); err != nil {
		return nil, nil
	}
	klog.FromContext(ctx).Info("Hanging", "method", method, "file", hang)
	t := time.NewTicker(hangPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
		if _, err := os.Stat(hang); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
}

// appendLine appends v as one JSON line to the file name in the control
// directory; a failure is logged, not returned: the call goes on.
func (c *control) appendLine(name string, v any) {
	if m, ok := v.(map[string]any); ok {
		m["time"] = time.Now()
	}
	b, err := json.Marshal(v)
	if err != nil {
		klog.Background().Error(err, "Encoding a record")
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(c.dir, name), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		klog.Background().Error(err, "Opening the record", "file", name)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		klog.Background().Error(err, "Writing the record", "file", name)
	}
}
