package testbed

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berthnode/berth/kubelet/atomicfile"
)

// State is what a bed records about itself in its run folder, so that any
// process (a later `testbed down`, the next test run) can find and remove it.
type State struct {
	// Name is the bed's name.
	Name string `json:"name"`
	// RunDir is the bed's run folder.
	RunDir string `json:"runDir"`
	// OwnerPID is the process that owns the bed; 0 when the bed outlives the
	// process that brought it up.
	OwnerPID int `json:"ownerPID,omitempty"`
	// OwnerStart is the owner's start time (field 22 of /proc/PID/stat), so
	// a reused PID is not mistaken for the owner.
	OwnerStart string `json:"ownerStart,omitempty"`
	// Hosts are the hosts created so far, the LAN namespace first.
	Hosts []HostState `json:"hosts"`
	// UpstreamDir holds the upstream binaries the bed runs.
	UpstreamDir string `json:"upstreamDir"`
	// Token is the kubeadm bootstrap token nodes join with.
	Token string `json:"token,omitempty"`
}

// HostState describes one host of a bed.
type HostState struct {
	// Name is the host's name (lan, cp, node1, ...); also its hostname.
	Name string `json:"name"`
	// IP is the host's LAN address; empty for the LAN namespace.
	IP string `json:"ip,omitempty"`
	// Mounts tells whether the host has mount and UTS namespaces of its own.
	Mounts bool `json:"mounts"`
}

const stateFile = "state.json"

// writeState records s atomically in its run folder.
func writeState(s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode bed state: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(s.RunDir, stateFile), data, 0o644); err != nil {
		return fmt.Errorf("write bed state: %w", err)
	}
	return nil
}

// readState reads the state of the bed in runDir.
func readState(runDir string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(runDir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("read bed state: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode bed state %s: %w", runDir, err)
	}
	return &s, nil
}

// processStart returns the start time of pid, in clock ticks since boot.
func processStart(pid int) (string, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", err
	}
	// The command name (field 2) may hold spaces and parentheses: split
	// after its closing parenthesis.
	rest := string(data)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	fields := strings.Fields(rest)
	const startField = 22 - 3 // fields 1 and 2 were cut, and we count from 0
	if len(fields) <= startField {
		return "", fmt.Errorf("short /proc/%d/stat", pid)
	}
	return fields[startField], nil
}

// abandoned tells whether the bed's owner is gone.
func (s *State) abandoned() bool {
	if s.OwnerPID == 0 {
		return false
	}
	start, err := processStart(s.OwnerPID)
	return errors.Is(err, fs.ErrNotExist) || (err == nil && start != s.OwnerStart)
}
