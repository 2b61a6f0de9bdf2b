// Package wire encodes and decodes the protobuf frames the protocol state
// machines exchange, with the size cap every frame obeys.
package wire

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"xnode/protocol"
)

// Encode marshals one frame of protocol name; a frame over
// protocol.MaxMessageSize is an error, never sent.
func Encode(name string, m proto.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("failed to encode %s message: %w", name, err)
	}
	if len(b) > protocol.MaxMessageSize {
		return nil, fmt.Errorf("%s: %w: outgoing message of %d bytes", name, protocol.ErrMessageTooLarge, len(b))
	}
	return b, nil
}

// Decode parses one frame into a new envelope E, a message holding one
// oneof of the protocol's messages. It refuses frames over
// protocol.MaxMessageSize, malformed ones and empty ones (no message set)
// with errors wrapping errProtocol, the calling protocol's violation
// sentinel.
func Decode[E any, P interface {
	*E
	proto.Message
}](msg []byte, errProtocol error) (P, error) {
	if len(msg) > protocol.MaxMessageSize {
		return nil, fmt.Errorf("%w: message of %d bytes exceeds %d", errProtocol, len(msg), protocol.MaxMessageSize)
	}
	env := P(new(E))
	if err := proto.Unmarshal(msg, env); err != nil {
		return nil, fmt.Errorf("%w: malformed message: %v", errProtocol, err)
	}
	// An envelope is one oneof: it encodes to nothing only when no message
	// is set.
	if proto.Size(env) == 0 {
		return nil, fmt.Errorf("%w: empty message", errProtocol)
	}
	return env, nil
}
