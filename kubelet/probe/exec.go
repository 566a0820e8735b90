package probe

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	remote "k8s.io/cri-client/pkg"
	utilexec "k8s.io/utils/exec"
)

// Execer runs a command in a container through CRI and waits for it;
// internalapi.RuntimeService has it. A command that exits non-zero returns
// a k8s.io/utils/exec ExitError; one that runs out of time an error that is
// remote.ErrCommandTimedOut or DeadlineExceeded.
type Execer interface {
	// ExecSync runs cmd in the container, for at most timeout (0: none).
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, err error)
}

// Exec runs cmd in the container within timeout: exit status 0 is a
// success, another exit status or running out of time a failure. The
// output is the command's stdout and stderr.
func Exec(ctx context.Context, rt Execer, containerID string, cmd []string, timeout time.Duration) (Result, string, error) {
	stdout, stderr, err := rt.ExecSync(ctx, containerID, cmd, timeout)
	out := string(stdout) + string(stderr)
	if err == nil {
		return Success, out, nil
	}
	var exit utilexec.ExitError
	switch {
	case errors.As(err, &exit):
		if exit.ExitStatus() == 0 {
			return Success, out, nil
		}
		return Failure, out, nil
	case IsTimeout(err):
		return Failure, "command timed out", nil
	}
	return Failure, out, err
}

// IsTimeout tells whether an ExecSync error says the command ran out of
// time.
func IsTimeout(err error) bool {
	return errors.Is(err, remote.ErrCommandTimedOut) || errors.Is(err, context.DeadlineExceeded) ||
		status.Code(err) == codes.DeadlineExceeded
}
