package testbed

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// CSICall is one line of csimock's calls.jsonl: one CSI call the mock
// driver answered (see test/tools/plugins/csimock).
type CSICall struct {
	// Time is when the call came in.
	Time time.Time `json:"time"`
	// Method is the call's method name, e.g. "NodePublishVolume".
	Method string `json:"method"`
	// VolumeID is the request's volume ID, if it has one.
	VolumeID string `json:"volume_id,omitempty"`
	// StagingTargetPath is the request's staging path, if it has one.
	StagingTargetPath string `json:"staging_target_path,omitempty"`
	// TargetPath is the request's target path, if it has one.
	TargetPath string `json:"target_path,omitempty"`
	// VolumePath is the request's volume path (stats, expansion), if any.
	VolumePath string `json:"volume_path,omitempty"`
	// Code is the gRPC code name of the answer, "OK" on success.
	Code string `json:"code"`
	// Error is the error message, empty on success.
	Error string `json:"error,omitempty"`
	// DurationMS is how long the call took, in milliseconds.
	DurationMS float64 `json:"duration_ms"`
}

// ReadCSICalls reads a csimock calls.jsonl file; a missing file is no
// calls.
func ReadCSICalls(path string) ([]CSICall, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("csimock calls: %w", err)
	}
	defer f.Close()
	var calls []CSICall
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		var c CSICall
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("csimock calls %s: line %q: %w", path, sc.Text(), err)
		}
		calls = append(calls, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("csimock calls %s: %w", path, err)
	}
	return calls, nil
}

// CSIMockCalls reads the calls.jsonl of a csimock that runs on node with
// --control-dir controlDir (a path of the node below one of its own
// folders, e.g. /var/lib/kubelet/plugins/NAME/control).
func (tb *Testbed) CSIMockCalls(node, controlDir string) ([]CSICall, error) {
	dir, err := tb.HostPath(node, controlDir)
	if err != nil {
		return nil, err
	}
	return ReadCSICalls(filepath.Join(dir, "calls.jsonl"))
}
