package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Client limits: tests loop a bounded number of times, for a bounded time.
const (
	maxCount   = 10000
	maxTimeout = 5 * time.Minute
	// maxReply bounds what one attempt reads (an /env listing fits).
	maxReply = 1 << 20
)

// attemptFunc makes one request to target and returns the reply.
type attemptFunc func(ctx context.Context, target string) (string, error)

// runClient is `echo get|tcp|udp TARGET`: it makes --count attempts, each on
// a new connection, prints every reply and fails if any attempt failed.
func runClient(ctx context.Context, mode string, args []string, stdout, stderr io.Writer) int {
	flags := newFlagSet(mode, stderr)
	count := flags.Int("count", 1, fmt.Sprintf("number of attempts, 1-%d", maxCount))
	timeout := flags.Duration("timeout", 2*time.Second, "time limit of each attempt")
	interval := flags.Duration("interval", 0, "pause between attempts")
	keepAlive := flags.Bool("keepalive", false, "get: send every request on one kept-alive connection (a failed one is not retried on another)")
	positional, err := parseInterspersed(flags, args)
	if err != nil {
		return 2
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "echo %s: want exactly one target, got %q\n%s", mode, positional, usage)
		return 2
	}
	if *count < 1 || *count > maxCount {
		fmt.Fprintf(stderr, "echo %s: --count %d is not in 1-%d\n", mode, *count, maxCount)
		return 2
	}
	if *timeout <= 0 || *timeout > maxTimeout {
		fmt.Fprintf(stderr, "echo %s: --timeout %v is not in (0, %v]\n", mode, *timeout, maxTimeout)
		return 2
	}
	if *interval < 0 || *interval > maxTimeout {
		fmt.Fprintf(stderr, "echo %s: --interval %v is not in [0, %v]\n", mode, *interval, maxTimeout)
		return 2
	}

	var attempt attemptFunc
	switch mode {
	case "get":
		client := newHTTPClient(*keepAlive)
		defer client.CloseIdleConnections()
		attempt = func(ctx context.Context, url string) (string, error) { return httpGet(ctx, client, url) }
	case "tcp":
		attempt = tcpRead
	case "udp":
		attempt = udpExchange
	default:
		fmt.Fprintf(stderr, "echo: unknown client mode %q\n", mode)
		return 2
	}

	target, failures := positional[0], 0
	for i := 1; i <= *count; i++ {
		if i > 1 && *interval > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(*interval):
			}
		}
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "echo %s: interrupted after %d of %d attempts\n", mode, i-1, *count)
			return 1
		}
		attemptCtx, cancel := context.WithTimeout(ctx, *timeout)
		reply, err := attempt(attemptCtx, target)
		cancel()
		if err != nil {
			failures++
			fmt.Fprintf(stderr, "echo %s: attempt %d of %d: %v\n", mode, i, *count, err)
			continue
		}
		if !strings.HasSuffix(reply, "\n") {
			reply += "\n"
		}
		fmt.Fprint(stdout, reply)
	}
	if failures > 0 {
		fmt.Fprintf(stderr, "echo %s: %d of %d attempts to %s failed\n", mode, failures, *count, target)
		return 1
	}
	return 0
}

// newHTTPClient returns a client that ignores proxy settings and does not
// follow redirects. It opens a new connection for every request (so that
// each one is load-balanced anew), or with keepAlive sends all on one
// connection, which a failed request does not replace silently: a test of
// a connection's life sees it break.
func newHTTPClient(keepAlive bool) *http.Client {
	tr := &http.Transport{DisableKeepAlives: !keepAlive, Proxy: nil}
	if keepAlive {
		tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = 1, 1
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// httpGet GETs url ("http://" is added when no scheme is given) and returns
// the body of a 200 answer.
func httpGet(ctx context.Context, client *http.Client, url string) (string, error) {
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err // already says "Get URL: ..."
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return "", fmt.Errorf("GET %s: read body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// tcpRead connects to addr and returns what the server sends before it
// closes the connection.
func tcpRead(ctx context.Context, addr string) (string, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("tcp %s: %w", addr, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return "", fmt.Errorf("tcp %s: %w", addr, err)
		}
	}
	reply, err := io.ReadAll(io.LimitReader(conn, maxReply))
	if err != nil {
		return "", fmt.Errorf("tcp %s: read: %w", addr, err)
	}
	if len(reply) == 0 {
		return "", fmt.Errorf("tcp %s: connection closed without a reply", addr)
	}
	return string(reply), nil
}

// udpExchange sends one datagram to addr from a new socket and returns the
// reply. The socket is connected, so only a reply from addr is accepted,
// which is what a client behind service NAT must see.
func udpExchange(ctx context.Context, addr string) (string, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "udp", addr)
	if err != nil {
		return "", fmt.Errorf("udp %s: %w", addr, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return "", fmt.Errorf("udp %s: %w", addr, err)
		}
	}
	if _, err := conn.Write([]byte("echo\n")); err != nil {
		return "", fmt.Errorf("udp %s: send: %w", addr, err)
	}
	buf := make([]byte, maxDatagram)
	n, err := conn.Read(buf)
	if err != nil {
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			return "", fmt.Errorf("udp %s: no reply: %w", addr, err)
		}
		return "", fmt.Errorf("udp %s: receive: %w", addr, err)
	}
	return string(buf[:n]), nil
}
