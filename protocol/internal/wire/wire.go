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

// Decode parses one frame into m. It refuses frames over
// protocol.MaxMessageSize and malformed ones with errors wrapping
// errProtocol, the calling protocol's violation sentinel.
func Decode(msg []byte, m proto.Message, errProtocol error) error {
	if len(msg) > protocol.MaxMessageSize {
		return fmt.Errorf("%w: message of %d bytes exceeds %d", errProtocol, len(msg), protocol.MaxMessageSize)
	}
	if err := proto.Unmarshal(msg, m); err != nil {
		return fmt.Errorf("%w: malformed message: %v", errProtocol, err)
	}
	return nil
}
