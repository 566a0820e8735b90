package probe

import (
	"context"
	"net"
	"strconv"
	"time"
)

// TCP connects to host:port within timeout; a connection is a success.
func TCP(ctx context.Context, host string, port int, timeout time.Duration) (Result, string, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return Failure, err.Error(), nil
	}
	_ = conn.Close()
	return Success, "", nil
}
