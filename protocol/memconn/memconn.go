// Package memconn is an in-memory protocol.Conn pair for tests and
// benchmarks: two ends joined by buffered channels, with byte counters and an
// optional tap that sees every message that crosses.
package memconn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"xnode/protocol"
)

// ErrClosed is returned by Send and Recv after either end has been closed.
var ErrClosed = errors.New("memconn: connection closed")

// Tap observes a message crossing from end from (0 or 1) to the other end.
// It must not modify or retain msg.
type Tap func(from int, msg []byte)

// Conn is one end of an in-memory pipe.
type Conn struct {
	id   int
	in   <-chan []byte
	out  chan<- []byte
	link *link

	sent atomic.Int64 // bytes sent by this end
	msgs atomic.Int64 // messages sent by this end
}

type link struct {
	tap       Tap
	closeOnce sync.Once
	closed    chan struct{}
}

// Pipe returns two joined ends. depth is the number of messages each
// direction buffers before Send blocks (at least 1). tap may be nil.
func Pipe(depth int, tap Tap) (*Conn, *Conn) {
	if depth < 1 {
		depth = 1
	}
	ab := make(chan []byte, depth)
	ba := make(chan []byte, depth)
	l := &link{tap: tap, closed: make(chan struct{})}
	return &Conn{id: 0, in: ba, out: ab, link: l}, &Conn{id: 1, in: ab, out: ba, link: l}
}

var _ protocol.Conn = (*Conn)(nil)

// Send implements protocol.Conn. It copies msg.
func (c *Conn) Send(ctx context.Context, msg []byte) error {
	if len(msg) > protocol.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes", protocol.ErrMessageTooLarge, len(msg))
	}
	cp := append([]byte(nil), msg...)
	if c.link.tap != nil {
		c.link.tap(c.id, cp)
	}
	select {
	case c.out <- cp:
		c.sent.Add(int64(len(cp)))
		c.msgs.Add(1)
		return nil
	case <-c.link.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Recv implements protocol.Conn.
func (c *Conn) Recv(ctx context.Context) ([]byte, error) {
	select {
	case msg := <-c.in:
		return msg, nil
	default:
	}
	select {
	case msg := <-c.in:
		return msg, nil
	case <-c.link.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close closes both ends; pending and later calls on either end fail with
// ErrClosed. It is safe to call more than once.
func (c *Conn) Close() error {
	c.link.closeOnce.Do(func() { close(c.link.closed) })
	return nil
}

// BytesSent is the number of message bytes this end has sent.
func (c *Conn) BytesSent() int64 { return c.sent.Load() }

// MessagesSent is the number of messages this end has sent.
func (c *Conn) MessagesSent() int64 { return c.msgs.Load() }
