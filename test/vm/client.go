package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/berthnode/berth/test/vm/agent"
)

// errConnLost is returned for calls in flight when the connection to qemu's
// agent socket ends (qemu exited).
var errConnLost = errors.New("connection to the agent's socket lost")

// defaultWriteTimeout bounds writing a request when ctx has no deadline: a
// guest that does not read (rebooting) fills the socket's buffer.
const defaultWriteTimeout = 30 * time.Second

// agentClient talks to the guest agent through the unix socket qemu
// listens on for the agent's virtio-serial port. The connection survives
// guest reboots (qemu keeps it); requests whose answers a reboot lost are
// bounded by their contexts. It reconnects when the connection ends.
type agentClient struct {
	socket string

	mu      sync.Mutex
	conn    *agentConn
	nextID  uint64
	pending map[uint64]chan agent.Response
}

// agentConn is one connection and the signal that its reader stopped.
type agentConn struct {
	net.Conn
	wmu  sync.Mutex
	done chan struct{}
}

func newAgentClient(socket string) *agentClient {
	return &agentClient{socket: socket, pending: map[uint64]chan agent.Response{}}
}

// call sends req (with an ID of its own) and waits for its answer.
func (c *agentClient) call(ctx context.Context, req agent.Request) (agent.Response, error) {
	conn, err := c.connect(ctx)
	if err != nil {
		return agent.Response{}, err
	}
	ch := make(chan agent.Response, 1)
	c.mu.Lock()
	c.nextID++
	req.ID = c.nextID
	c.pending[req.ID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, req.ID)
		c.mu.Unlock()
	}()
	line, err := json.Marshal(req)
	if err != nil {
		return agent.Response{}, fmt.Errorf("encode request: %w", err)
	}
	if err := conn.send(ctx, append(line, '\n')); err != nil {
		// Whatever broke the connection, or left half a line on it:
		// the next call starts afresh.
		conn.Close()
		<-conn.done
		return agent.Response{}, err
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-conn.done:
		return agent.Response{}, errConnLost
	case <-ctx.Done():
		return agent.Response{}, fmt.Errorf("wait for the agent's answer: %w", context.Cause(ctx))
	}
}

// send writes one line, bounded by ctx's deadline.
func (conn *agentConn) send(ctx context.Context, line []byte) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultWriteTimeout)
	}
	conn.wmu.Lock()
	defer conn.wmu.Unlock()
	if err := conn.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	if _, err := conn.Write(line); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	return nil
}

// connect returns the current connection, dialing a new one if there is
// none.
func (c *agentClient) connect(ctx context.Context) (*agentConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		return c.conn, nil
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, fmt.Errorf("connect to the agent's socket: %w", err)
	}
	conn := &agentConn{Conn: nc, done: make(chan struct{})}
	c.conn = conn
	go c.read(klog.FromContext(ctx), conn)
	return conn, nil
}

// read hands each answer on conn to the call waiting for it, until conn
// ends.
func (c *agentClient) read(logger klog.Logger, conn *agentConn) {
	defer func() {
		conn.Close()
		c.mu.Lock()
		if c.conn == conn {
			c.conn = nil
		}
		c.mu.Unlock()
		close(conn.done)
	}()
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 0, 64<<10), agent.MaxLine)
	for sc.Scan() {
		var resp agent.Response
		if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
			logger.V(2).Info("Skipping a line from the agent that is not a response", "err", err)
			continue
		}
		c.mu.Lock()
		ch, ok := c.pending[resp.ID]
		c.mu.Unlock()
		if ok {
			select {
			case ch <- resp:
			default:
			}
		}
	}
}

// close ends the connection, if any.
func (c *agentClient) close() error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return nil
	}
	err := conn.Close()
	<-conn.done
	return err
}
