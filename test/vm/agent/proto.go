package agent

// PortName is the name of the virtio-serial port the agent listens on; the
// guest sees it as /dev/virtio-ports/PortName.
const PortName = "berth.agent"

// MaxLine bounds one encoded message in either direction. Output beyond
// MaxOutput per stream, and files larger than MaxFile, are cut off to stay
// below it.
const (
	MaxLine   = 64 << 20
	MaxOutput = 16 << 20
	MaxFile   = 32 << 20
)

// Op names what a Request asks for.
type Op string

// The operations the agent knows.
const (
	// OpPing asks only for a Response: it tells that the agent is up, and
	// the boot ID tells which boot of the guest answered.
	OpPing Op = "ping"
	// OpExec runs Request.Command with /bin/sh -c.
	OpExec Op = "exec"
	// OpRead returns the content of the file at Request.Path.
	OpRead Op = "read"
)

// Request is one message from the host.
type Request struct {
	// ID is chosen by the host; the Response carries it back.
	ID uint64 `json:"id"`
	// Op is the operation.
	Op Op `json:"op"`
	// Command is the shell command of OpExec.
	Command string `json:"command,omitempty"`
	// TimeoutMillis bounds OpExec: the agent kills the command's process
	// group once it has run that long. Zero means no bound.
	TimeoutMillis int64 `json:"timeoutMillis,omitempty"`
	// Path is the guest file of OpRead.
	Path string `json:"path,omitempty"`
}

// Response is the agent's answer to the Request with the same ID.
type Response struct {
	// ID is the ID of the Request answered.
	ID uint64 `json:"id"`
	// BootID is the guest kernel's boot ID
	// (/proc/sys/kernel/random/boot_id); it changes on every boot.
	BootID string `json:"bootID"`
	// Stdout is what an OpExec command wrote to its standard output.
	Stdout []byte `json:"stdout,omitempty"`
	// Stderr is what an OpExec command wrote to its standard error.
	Stderr []byte `json:"stderr,omitempty"`
	// ExitCode is an OpExec command's exit status, or -1 when it did not
	// exit by itself (killed by a signal, timed out, not started).
	ExitCode int `json:"exitCode"`
	// Data is the file content of OpRead.
	Data []byte `json:"data,omitempty"`
	// Error says why the operation failed, as opposed to a command that
	// ran and exited non-zero; empty on success.
	Error string `json:"error,omitempty"`
}
