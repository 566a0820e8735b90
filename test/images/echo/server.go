package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits that keep the server's resource use bounded whatever its clients
// do.
const (
	// connTimeout bounds the life of a TCP connection and of an HTTP
	// request.
	connTimeout = 5 * time.Second
	// maxTCPConns bounds the TCP connections served at once; further
	// connections wait in the listen backlog.
	maxTCPConns = 1024
	// maxDatagram is the largest UDP datagram read; longer ones are cut.
	maxDatagram = 64 << 10
	// shutdownGrace is how long in-flight HTTP requests get on termination,
	// well within the 1s the tests allow.
	shutdownGrace = 500 * time.Millisecond
)

// serverConfig is what `echo serve` runs with.
type serverConfig struct {
	// HTTPAddr, TCPAddr and UDPAddr are the listen addresses; an empty
	// address disables that listener.
	HTTPAddr, TCPAddr, UDPAddr string
	// Name starts every answer.
	Name string
	// Log receives one line per request and the lifecycle messages.
	Log *log.Logger
	// Environ returns the environment that /env lists.
	Environ func() []string
}

// server answers HTTP, TCP and UDP clients with their own address.
type server struct {
	cfg     serverConfig
	httpLn  net.Listener
	tcpLn   net.Listener
	udpConn net.PacketConn
	// exit receives the code asked for by /exit.
	exit chan int
	// unhealthy makes /healthz fail (set by /sethealth?ok=false), for
	// readiness and liveness probe tests.
	unhealthy atomic.Bool
}

// listen binds every configured address, so that a bad address fails before
// anything is served.
func listen(cfg serverConfig) (_ *server, err error) {
	s := &server{cfg: cfg, exit: make(chan int, 1)}
	defer func() {
		if err != nil {
			s.closeListeners()
		}
	}()
	if cfg.HTTPAddr != "" {
		if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("listen http: %w", err)
		}
	}
	if cfg.TCPAddr != "" {
		if s.tcpLn, err = net.Listen("tcp", cfg.TCPAddr); err != nil {
			return nil, fmt.Errorf("listen tcp: %w", err)
		}
	}
	if cfg.UDPAddr != "" {
		if s.udpConn, err = net.ListenPacket("udp", cfg.UDPAddr); err != nil {
			return nil, fmt.Errorf("listen udp: %w", err)
		}
	}
	return s, nil
}

// addrs describes the bound addresses for the start-up log line.
func (s *server) addrs() string {
	var parts []string
	if s.httpLn != nil {
		parts = append(parts, "http="+s.httpLn.Addr().String())
	}
	if s.tcpLn != nil {
		parts = append(parts, "tcp="+s.tcpLn.Addr().String())
	}
	if s.udpConn != nil {
		parts = append(parts, "udp="+s.udpConn.LocalAddr().String())
	}
	return strings.Join(parts, " ")
}

func (s *server) closeListeners() {
	// Errors only say that a listener was already closed.
	if s.httpLn != nil {
		_ = s.httpLn.Close()
	}
	if s.tcpLn != nil {
		_ = s.tcpLn.Close()
	}
	if s.udpConn != nil {
		_ = s.udpConn.Close()
	}
}

// run serves until ctx ends (exit code 0), a client asks for /exit (its
// code) or a listener fails (an error).
func (s *server) run(ctx context.Context) (int, error) {
	httpSrv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: connTimeout,
		ReadTimeout:       connTimeout,
		WriteTimeout:      connTimeout,
		IdleTimeout:       connTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          s.cfg.Log,
	}
	failed := make(chan error, 3)
	var wg sync.WaitGroup
	if s.httpLn != nil {
		wg.Go(func() {
			if err := httpSrv.Serve(s.httpLn); !errors.Is(err, http.ErrServerClosed) {
				failed <- fmt.Errorf("serve http: %w", err)
			}
		})
	}
	if s.tcpLn != nil {
		wg.Go(func() { s.serveTCP(failed) })
	}
	if s.udpConn != nil {
		wg.Go(func() { s.serveUDP(failed) })
	}

	code, err := 0, error(nil)
	select {
	case <-ctx.Done():
		s.cfg.Log.Print("terminating")
	case code = <-s.exit:
		s.cfg.Log.Printf("exiting with code %d as asked", code)
	case err = <-failed:
		s.cfg.Log.Printf("stopping: %v", err)
	}
	s.closeListeners()
	// Shutdown lets in-flight requests finish, such as the /exit answer.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if serr := httpSrv.Shutdown(shutdownCtx); serr != nil {
		_ = httpSrv.Close() // the grace period is over: drop what is left
	}
	wg.Wait()
	return code, err
}

// line is the answer to a client at addr.
func (s *server) line(addr string) string {
	return s.cfg.Name + " " + addr + "\n"
}

// ServeHTTP answers every request and logs it.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status := s.respond(w, r)
	s.cfg.Log.Printf("http %s %s from %s: %d", r.Method, r.URL.RequestURI(), r.RemoteAddr, status)
}

func (s *server) respond(w http.ResponseWriter, r *http.Request) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch r.URL.Path {
	case "/healthz":
		if s.unhealthy.Load() {
			http.Error(w, "unhealthy, as asked", http.StatusServiceUnavailable)
			return http.StatusServiceUnavailable
		}
		_, _ = io.WriteString(w, "ok\n")
	case "/sethealth":
		ok, err := strconv.ParseBool(r.URL.Query().Get("ok"))
		if err != nil {
			http.Error(w, "want /sethealth?ok=true|false", http.StatusBadRequest)
			return http.StatusBadRequest
		}
		s.unhealthy.Store(!ok)
		_, _ = fmt.Fprintf(w, "healthy: %v\n", ok)
	case "/env":
		env := slices.Clone(s.cfg.Environ())
		slices.Sort(env)
		_, _ = io.WriteString(w, strings.Join(append(env, ""), "\n"))
	case "/exit":
		code, err := strconv.Atoi(r.URL.Query().Get("code"))
		if err != nil || code < 0 || code > 255 {
			http.Error(w, "want /exit?code=N with N in 0-255", http.StatusBadRequest)
			return http.StatusBadRequest
		}
		w.Header().Set("Connection", "close")
		_, _ = fmt.Fprintf(w, "exiting with code %d\n", code)
		select {
		case s.exit <- code:
		default: // an exit is already under way
		}
	default:
		_, _ = io.WriteString(w, s.line(r.RemoteAddr))
	}
	return http.StatusOK
}

// serveTCP answers each connection with one line and closes it, at most
// maxTCPConns at a time.
func (s *server) serveTCP(failed chan<- error) {
	slots := make(chan struct{}, maxTCPConns)
	for {
		slots <- struct{}{}
		conn, err := s.tcpLn.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				failed <- fmt.Errorf("accept tcp: %w", err)
			}
			return
		}
		go func() {
			defer func() { <-slots }()
			s.answerTCP(conn)
		}()
	}
}

func (s *server) answerTCP(conn net.Conn) {
	defer conn.Close()
	addr := conn.RemoteAddr().String()
	if err := conn.SetDeadline(time.Now().Add(connTimeout)); err != nil {
		s.cfg.Log.Printf("tcp from %s: %v", addr, err)
		return
	}
	if _, err := io.WriteString(conn, s.line(addr)); err != nil {
		s.cfg.Log.Printf("tcp from %s: %v", addr, err)
		return
	}
	s.cfg.Log.Printf("tcp from %s", addr)
}

// serveUDP answers each datagram with one line, in turn: one goroutine
// serves every client.
func (s *server) serveUDP(failed chan<- error) {
	buf := make([]byte, maxDatagram)
	for {
		_, from, err := s.udpConn.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				failed <- fmt.Errorf("read udp: %w", err)
			}
			return
		}
		addr := from.String()
		if err := s.udpConn.SetWriteDeadline(time.Now().Add(connTimeout)); err != nil {
			s.cfg.Log.Printf("udp from %s: %v", addr, err)
			continue
		}
		if _, err := s.udpConn.WriteTo([]byte(s.line(addr)), from); err != nil {
			s.cfg.Log.Printf("udp from %s: %v", addr, err)
			continue
		}
		s.cfg.Log.Printf("udp from %s", addr)
	}
}

// runServe is `echo serve`.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := newFlagSet("serve", stderr)
	cfg := serverConfig{Environ: os.Environ}
	flags.StringVar(&cfg.HTTPAddr, "http", ":8080", "HTTP listen address; empty disables HTTP")
	flags.StringVar(&cfg.TCPAddr, "tcp", ":9000", "TCP listen address; empty disables TCP")
	flags.StringVar(&cfg.UDPAddr, "udp", ":9001", "UDP listen address; empty disables UDP")
	flags.StringVar(&cfg.Name, "name", "", "name in every answer (default $POD_NAME, then the hostname)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "echo serve: unexpected arguments %q\n", flags.Args())
		return 2
	}
	if cfg.Name == "" {
		cfg.Name = defaultName(os.Getenv, os.Hostname)
	}
	cfg.Log = log.New(stdout, "", log.LstdFlags|log.Lmicroseconds|log.LUTC)

	s, err := listen(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "echo serve: %v\n", err)
		return 1
	}
	cfg.Log.Printf("echo %s serving %s", cfg.Name, s.addrs())
	code, err := s.run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "echo serve: %v\n", err)
		return 1
	}
	return code
}

// defaultName is $POD_NAME, else the hostname, else "echo".
func defaultName(getenv func(string) string, hostname func() (string, error)) string {
	if name := getenv("POD_NAME"); name != "" {
		return name
	}
	if name, err := hostname(); err == nil && name != "" {
		return name
	}
	return "echo"
}
