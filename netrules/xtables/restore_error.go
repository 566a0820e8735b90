package xtables

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// RestoreError is an iptables-restore that rejected a payload. The kernel
// still holds the table as it was: a restore is atomic per table.
type RestoreError struct {
	// Table is the table whose payload was rejected.
	Table Table
	// Line is the payload line iptables-restore reported (from 1), 0 when
	// it named none.
	Line int
	// Context is that line and the two on each side, each prefixed with
	// its number.
	Context []string
	// Err is the failure of the run.
	Err error
}

// Error names the table and quotes the failing line.
func (e *RestoreError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("restoring table %s: %v", e.Table, e.Err)
	}
	return fmt.Sprintf("restoring table %s: line %d rejected: %v", e.Table, e.Line, e.Err)
}

// Unwrap returns the run's failure.
func (e *RestoreError) Unwrap() error { return e.Err }

// failedLine finds the line number in iptables-restore's complaints:
// "Error occurred at line: 16" (parse errors), "line 4: CHAIN_DEL failed"
// (nf_tables commit errors) and "iptables-restore: line 4 failed" (legacy);
// 0 when there is none.
func failedLine(stderr string) int {
	for rest := stderr; ; {
		i := strings.Index(rest, "line")
		if i < 0 {
			return 0
		}
		rest = rest[i+len("line"):]
		digits, ok := strings.CutPrefix(strings.TrimPrefix(rest, ":"), " ")
		if !ok {
			continue
		}
		end := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			end = len(digits)
		}
		if n, err := strconv.Atoi(digits[:end]); err == nil && n > 0 {
			return n
		}
	}
}

// NewRestoreError builds the error for a rejected payload, with the lines
// around the one iptables-restore names.
func NewRestoreError(table Table, payload []byte, err error) *RestoreError {
	re := &RestoreError{Table: table, Err: err}
	var ee *ExitError
	if !errors.As(err, &ee) {
		return re
	}
	if re.Line = failedLine(ee.Stderr); re.Line == 0 {
		return re
	}
	lines := strings.Split(string(payload), "\n")
	for n := max(re.Line-2, 1); n <= min(re.Line+2, len(lines)); n++ {
		re.Context = append(re.Context, fmt.Sprintf("%d: %s", n, lines[n-1]))
	}
	return re
}
