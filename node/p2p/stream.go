package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"

	"xnode/node/membership"
	"xnode/protocol"
)

// StreamConn is a protocol.Conn over one libp2p stream: uvarint-length-
// prefixed frames of at most protocol.MaxMessageSize bytes.
//
// One goroutine may Send while another Receives. If the ctx of a Send or
// Recv ends during the call, the stream is reset and unusable afterwards.
// The owner ends it with Close (success) or Reset (failure).
type StreamConn interface {
	protocol.Conn
	// Remote is the remote peer's verified membership certificate.
	Remote() *membership.Cert
	// Close ends the stream in good order.
	Close() error
	// Reset aborts the stream; the remote sees an error.
	Reset() error
}

// smallWrite is the largest message sent in one Write with its prefix.
const smallWrite = 64 << 10

type streamConn struct {
	s      network.Stream
	r      *bufio.Reader
	max    int
	remote *membership.Cert
	onEnd  func()

	mu sync.Mutex
	// reserved is the memory reserved in the stream's scope for the last
	// frame received.
	reserved int
	ended    bool
}

func newStreamConn(s network.Stream, max int, remote *membership.Cert, onEnd func()) *streamConn {
	return &streamConn{s: s, r: bufio.NewReaderSize(s, 4096), max: max, remote: remote, onEnd: onEnd}
}

func (c *streamConn) Remote() *membership.Cert { return c.remote }

// Send writes one frame.
func (c *streamConn) Send(ctx context.Context, msg []byte) error {
	if len(msg) > c.max {
		return fmt.Errorf("%w: %d bytes, limit %d", protocol.ErrMessageTooLarge, len(msg), c.max)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.s.Reset() })
	defer stop()
	hdr := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+smallWrite), uint64(len(msg)))
	var err error
	if len(msg) <= smallWrite {
		_, err = c.s.Write(append(hdr, msg...))
	} else if _, err = c.s.Write(hdr); err == nil {
		_, err = c.s.Write(msg)
	}
	if err != nil {
		return c.ioErr(ctx, "send", err)
	}
	return nil
}

// Recv reads one frame. A length prefix over the limit is refused before
// anything is allocated for it, and the stream is reset.
func (c *streamConn) Recv(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.s.Reset() })
	defer stop()
	msg, err := readFrame(c.r, c.max, c.reserve)
	if err != nil {
		if errors.Is(err, protocol.ErrMessageTooLarge) {
			_ = c.s.Reset()
			return nil, err
		}
		return nil, c.ioErr(ctx, "receive", err)
	}
	return msg, nil
}

// reserve holds n bytes of the stream's memory budget for the frame being
// read, releasing what the previous frame held.
func (c *streamConn) reserve(n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return errStreamEnded
	}
	c.releaseLocked()
	if n == 0 {
		return nil
	}
	if err := c.s.Scope().ReserveMemory(n, network.ReservationPriorityHigh); err != nil {
		return fmt.Errorf("failed to reserve %d bytes for a frame: %w", n, err)
	}
	c.reserved = n
	return nil
}

// releaseLocked returns the reserved memory; c.mu must be held.
func (c *streamConn) releaseLocked() {
	if c.reserved > 0 {
		c.s.Scope().ReleaseMemory(c.reserved)
		c.reserved = 0
	}
}

func (c *streamConn) end() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return false
	}
	c.ended = true
	c.releaseLocked()
	return true
}

func (c *streamConn) Close() error {
	if !c.end() {
		return nil
	}
	if c.onEnd != nil {
		c.onEnd()
	}
	return c.s.Close()
}

func (c *streamConn) Reset() error {
	if !c.end() {
		return nil
	}
	if c.onEnd != nil {
		c.onEnd()
	}
	return c.s.Reset()
}

func (c *streamConn) ioErr(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("failed to %s: %w", op, ctxErr)
	}
	return fmt.Errorf("failed to %s: %w", op, err)
}

var errStreamEnded = errors.New("stream already closed")

// readFrame reads one uvarint-length-prefixed frame of at most max bytes.
// It calls reserve(n) before allocating n bytes. io.EOF means the peer
// closed cleanly between frames.
func readFrame(r *bufio.Reader, max int, reserve func(int) error) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: length prefix %d, limit %d", protocol.ErrMessageTooLarge, n, max)
	}
	if reserve != nil {
		if err := reserve(int(n)); err != nil {
			return nil, err
		}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}
