package stream

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	dialed, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-accepted
	if a == nil {
		t.Fatal("accept failed")
	}
	for _, c := range []net.Conn{dialed, a} {
		t.Cleanup(func() { c.Close() })
		if err := c.SetDeadline(time.Now().Add(testTimeout)); err != nil {
			t.Fatal(err)
		}
	}
	return dialed, a
}

// TestPipeClientNeverCloses checks that a session the runtime ended does
// not wait forever on a client that keeps its connection open.
func TestPipeClientNeverCloses(t *testing.T) {
	client, proxyClientSide := tcpPair(t)
	proxyBackendSide, backend := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		done <- pipe(proxyClientSide, bufio.NewReader(proxyClientSide), proxyBackendSide, bufio.NewReader(proxyBackendSide), 50*time.Millisecond)
	}()
	if _, err := backend.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	backend.Close()
	// The client reads the end but neither writes nor closes.
	b, err := io.ReadAll(client)
	if err != nil || string(b) != "last words" {
		t.Fatalf("client read %q, %v; want the last words and the end", b, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pipe() = %v, want nil", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("pipe still waits on the client after its grace")
	}
}

// TestPipeForwardsBuffered checks that bytes each reader buffered before
// the switch of protocols are passed on first.
func TestPipeForwardsBuffered(t *testing.T) {
	client, proxyClientSide := tcpPair(t)
	proxyBackendSide, backend := tcpPair(t)
	if _, err := client.Write([]byte("early-client ")); err != nil {
		t.Fatal(err)
	}
	if _, err := backend.Write([]byte("early-backend ")); err != nil {
		t.Fatal(err)
	}
	clientBuf, backendBuf := bufio.NewReader(proxyClientSide), bufio.NewReader(proxyBackendSide)
	for _, r := range []*bufio.Reader{clientBuf, backendBuf} {
		if _, err := r.Peek(1); err != nil { // buffers what arrived
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- pipe(proxyClientSide, clientBuf, proxyBackendSide, backendBuf, testTimeout) }()
	if _, err := client.Write([]byte("late-client")); err != nil {
		t.Fatal(err)
	}
	client.(*net.TCPConn).CloseWrite()
	if _, err := backend.Write([]byte("late-backend")); err != nil {
		t.Fatal(err)
	}
	backend.(*net.TCPConn).CloseWrite()
	toBackend, err := io.ReadAll(backend)
	if err != nil || string(toBackend) != "early-client late-client" {
		t.Errorf("backend read %q, %v", toBackend, err)
	}
	toClient, err := io.ReadAll(client)
	if err != nil || string(toClient) != "early-backend late-backend" {
		t.Errorf("client read %q, %v", toClient, err)
	}
	if err := <-done; err != nil {
		t.Errorf("pipe() = %v, want nil", err)
	}
}
