package stream

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// defaultCloseGrace is how long a client may keep sending once the runtime
// has ended the session: long enough for the client to read the end and
// close, short enough that a client that never closes does not hold the
// proxy.
const defaultCloseGrace = 10 * time.Second

// upgradeProxy relays an HTTP/1.1 upgrade request to another server and,
// once that server switches protocols, the bytes of both connections.
type upgradeProxy struct {
	// timeout bounds connecting and the exchange of request and response.
	timeout time.Duration
	// rootCAs verify https servers not on loopback; nil means the host's.
	rootCAs *x509.CertPool
	// closeGrace is how long the client may keep sending once the server
	// has ended the session.
	closeGrace time.Duration
}

// serve relays upgrade request r to target and returns the status the
// client got: 101 after a session (err tells how it ended), the target's
// refusal, which was relayed, or 0 when nothing was answered and err
// should be.
func (p *upgradeProxy) serve(w http.ResponseWriter, r *http.Request, target *url.URL) (int, error) {
	backend, err := p.dial(r.Context(), target)
	if err != nil {
		return 0, withStatus(http.StatusBadGateway, "connecting to the runtime's streaming server: %w", err)
	}
	// I/O deadlines are wall-clock by nature; the injected clock is not.
	if err := backend.SetDeadline(time.Now().Add(p.timeout)); err != nil {
		backend.Close()
		return 0, fmt.Errorf("streaming server connection: %w", err)
	}
	out := outgoingRequest(r, target)
	br := bufio.NewReader(backend)
	resp, err := exchange(backend, br, out)
	if err != nil {
		backend.Close()
		return 0, withStatus(http.StatusBadGateway, "runtime's streaming server: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer backend.Close()
		relay(w, resp)
		return resp.StatusCode, nil
	}
	client, clientBuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		backend.Close()
		return 0, fmt.Errorf("taking over the client connection: %w", err)
	}
	// The server's read and write timeouts do not apply to a session.
	for _, c := range []net.Conn{client, backend} {
		if err := c.SetDeadline(time.Time{}); err != nil {
			client.Close()
			backend.Close()
			return http.StatusSwitchingProtocols, fmt.Errorf("clearing connection deadlines: %w", err)
		}
	}
	if err := writeHead(clientBuf.Writer, resp); err != nil {
		client.Close()
		backend.Close()
		return http.StatusSwitchingProtocols, fmt.Errorf("answering the client: %w", err)
	}
	return http.StatusSwitchingProtocols, pipe(client, clientBuf.Reader, backend, br, p.closeGrace)
}

// dial connects to the host of u, with TLS for https.
func (p *upgradeProxy) dial(ctx context.Context, u *url.URL) (net.Conn, error) {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	d := &net.Dialer{Timeout: p.timeout}
	if u.Scheme != "https" {
		return d.DialContext(ctx, "tcp", addr)
	}
	td := &tls.Dialer{NetDialer: d, Config: p.tlsConfig(u.Hostname())}
	return td.DialContext(ctx, "tcp", addr)
}

// tlsConfig is the client TLS configuration for a streaming server on host.
// The server is verified unless it is on loopback: only the node itself can
// answer there, and runtimes serve a self-signed certificate by default.
func (p *upgradeProxy) tlsConfig(host string) *tls.Config {
	return &tls.Config{
		ServerName:         host,
		RootCAs:            p.rootCAs,
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"http/1.1"},
		InsecureSkipVerify: isLoopback(host),
	}
}

// isLoopback tells whether host names the node's loopback.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// outgoingRequest is r as sent to target: target's path and query, r's
// method and end-to-end headers, and r's upgrade.
func outgoingRequest(r *http.Request, target *url.URL) *http.Request {
	h := endToEnd(r.Header)
	h["Connection"] = []string{"Upgrade"}
	h["Upgrade"] = r.Header.Values("Upgrade")
	u := *target
	return &http.Request{
		Method:     r.Method,
		URL:        &u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       target.Host,
	}
}

// exchange writes out on conn and reads the response from br, which
// buffers conn.
func exchange(conn net.Conn, br *bufio.Reader, out *http.Request) (*http.Response, error) {
	if err := out.Write(conn); err != nil {
		return nil, fmt.Errorf("sending the upgrade request: %w", err)
	}
	resp, err := http.ReadResponse(br, out)
	if err != nil {
		return nil, fmt.Errorf("reading the upgrade response: %w", err)
	}
	return resp, nil
}

// relay answers the client with resp, a refusal to upgrade.
func relay(w http.ResponseWriter, resp *http.Response) {
	defer resp.Body.Close()
	for name, values := range endToEnd(resp.Header) {
		w.Header()[name] = values
	}
	w.WriteHeader(resp.StatusCode)
	// The client got the status already; a broken body is all it can see.
	_, _ = io.Copy(w, resp.Body)
}

// writeHead writes the status line and headers of resp, the switch of
// protocols, as the server sent them.
func writeHead(w *bufio.Writer, resp *http.Response) error {
	if _, err := fmt.Fprintf(w, "HTTP/1.1 %s\r\n", resp.Status); err != nil {
		return err
	}
	if err := resp.Header.Write(w); err != nil {
		return err
	}
	if _, err := w.WriteString("\r\n"); err != nil {
		return err
	}
	return w.Flush()
}

// isUpgrade tells whether r asks to switch protocols.
func isUpgrade(r *http.Request) bool {
	for _, t := range connectionTokens(r.Header) {
		if strings.EqualFold(t, "upgrade") {
			return r.Header.Get("Upgrade") != ""
		}
	}
	return false
}

// isWebSocket tells whether r asks to switch to WebSocket.
func isWebSocket(r *http.Request) bool {
	if !isUpgrade(r) {
		return false
	}
	for _, v := range r.Header.Values("Upgrade") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "websocket") {
				return true
			}
		}
	}
	return false
}

// endToEnd returns a copy of h without the headers of one connection
// (RFC 9110 7.6.1), those Connection names included, and without the
// credentials meant for the kubelet, not the runtime.
func endToEnd(h http.Header) http.Header {
	out := h.Clone()
	for _, name := range connectionTokens(h) {
		out.Del(name)
	}
	for _, name := range []string{
		"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Authorization", "Cookie",
	} {
		out.Del(name)
	}
	return out
}

// connectionTokens are the tokens of the Connection headers of h, in
// canonical header form.
func connectionTokens(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Connection") {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, textproto.CanonicalMIMEHeaderKey(t))
			}
		}
	}
	return out
}

// copied is the end of one direction of a session.
type copied struct {
	fromClient bool
	err        error
}

// pipe copies the bytes of a session both ways, each from what its reader
// buffered already, until both directions end, then closes both
// connections. The end of one direction is passed on as a half-close, so
// the other can still finish: a client ending its input may still receive
// output. When the backend ends first, the client gets grace to end too.
// An error in either direction ends both.
func pipe(client net.Conn, clientBuf *bufio.Reader, backend net.Conn, backendBuf *bufio.Reader, grace time.Duration) error {
	defer client.Close()
	defer backend.Close()
	done := make(chan copied, 2)
	go func() { done <- copied{fromClient: true, err: copyHalf(backend, client, clientBuf)} }()
	go func() { done <- copied{fromClient: false, err: copyHalf(client, backend, backendBuf)} }()
	first := <-done
	switch {
	case first.err != nil:
		client.Close()
		backend.Close()
		<-done
		return sessionError(first.err)
	case !first.fromClient:
		// The runtime ended the session; let the client see the end,
		// but do not wait on it forever.
		_ = client.SetReadDeadline(time.Now().Add(grace))
	}
	second := <-done
	if second.err != nil && !first.fromClient && errors.Is(second.err, os.ErrDeadlineExceeded) {
		return nil
	}
	return sessionError(second.err)
}

// copyHalf copies src, and first what buf already read of it, to dst, then
// half-closes dst.
func copyHalf(dst, src net.Conn, buf *bufio.Reader) error {
	if n := buf.Buffered(); n > 0 {
		b, _ := buf.Peek(n)
		if _, err := dst.Write(b); err != nil {
			return err
		}
	}
	if _, err := io.Copy(dst, src); err != nil {
		return err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err == nil {
			return nil
		}
	}
	return dst.Close()
}

// sessionError is err unless it only says that a peer went away, the way
// sessions end.
func sessionError(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return err
}
