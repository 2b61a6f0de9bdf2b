// Package protocol is the seam between xnode's privacy protocols and the
// transports that carry them.
//
// Every protocol (psi/ecdh, and those that follow) is a sans-I/O state
// machine: a [Machine] turns received messages into messages to send and owns
// no goroutine, socket or timer. [Run] drives a Machine over a [Conn], a
// framed, ordered, reliable message channel. The node adapts a libp2p stream
// to a Conn (uvarint-length-prefixed frames with a hard size cap); tests and
// benchmarks use the in-memory pipe of package protocol/memconn.
package protocol

import (
	"context"
	"errors"
	"fmt"
)

// MaxMessageSize caps every protocol message, in bytes. Transports refuse
// larger frames before reading them; decoders check it again.
const MaxMessageSize = 4 << 20

// ErrMessageTooLarge is returned for a message over MaxMessageSize.
var ErrMessageTooLarge = errors.New("protocol message too large")

// Conn is a framed, ordered, reliable message channel to one peer.
type Conn interface {
	// Send transmits one message. The Conn does not retain msg after Send
	// returns, and the caller does not modify it before.
	Send(ctx context.Context, msg []byte) error
	// Recv returns the next message. It returns an error if the peer closed
	// or reset the channel, the context ended, or a frame exceeds
	// MaxMessageSize.
	Recv(ctx context.Context) ([]byte, error)
}

// Machine is one party of a protocol session, free of I/O.
type Machine interface {
	// Next returns the next message to send, or nil when the machine must
	// receive before it can send more (or is done).
	Next() ([]byte, error)
	// Deliver hands one received message to the machine.
	Deliver(msg []byte) error
	// Done reports whether the machine has finished: it will neither send
	// nor expect anything more.
	Done() bool
}

// Run drives m over c until m is done, an error occurs or ctx ends.
// It sends everything m has to send before it receives, so a machine
// controls flow (for example a window of outstanding batches) through what
// Next returns.
func Run(ctx context.Context, m Machine, c Conn) error {
	for {
		for {
			msg, err := m.Next()
			if err != nil {
				return err
			}
			if msg == nil {
				break
			}
			if err := c.Send(ctx, msg); err != nil {
				return fmt.Errorf("failed to send: %w", err)
			}
		}
		if m.Done() {
			return nil
		}
		msg, err := c.Recv(ctx)
		if err != nil {
			return fmt.Errorf("failed to receive: %w", err)
		}
		if len(msg) > MaxMessageSize {
			return fmt.Errorf("%w: %d bytes", ErrMessageTooLarge, len(msg))
		}
		if err := m.Deliver(msg); err != nil {
			return err
		}
	}
}
