package secagg

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/proto"

	"xnode/protocol"
	"xnode/protocol/secagg/pb"
)

func encode(env *pb.Envelope) ([]byte, error) {
	b, err := proto.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("failed to encode secagg message: %w", err)
	}
	if len(b) > protocol.MaxMessageSize {
		return nil, fmt.Errorf("secagg: %w: outgoing message of %d bytes", protocol.ErrMessageTooLarge, len(b))
	}
	return b, nil
}

// decode parses one frame. It refuses frames over protocol.MaxMessageSize and
// anything that is not exactly one known message.
func decode(msg []byte) (*pb.Envelope, error) {
	if len(msg) > protocol.MaxMessageSize {
		return nil, fmt.Errorf("%w: message of %d bytes exceeds %d", ErrProtocol, len(msg), protocol.MaxMessageSize)
	}
	env := new(pb.Envelope)
	if err := proto.Unmarshal(msg, env); err != nil {
		return nil, fmt.Errorf("%w: malformed message: %v", ErrProtocol, err)
	}
	if env.Body == nil {
		return nil, fmt.Errorf("%w: empty message", ErrProtocol)
	}
	return env, nil
}

func pack(v []uint64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], x)
	}
	return b
}

// indexSet checks that ids is strictly ascending, within a roster of n and
// of at most n entries, and returns it as a membership slice.
func indexSet(ids []uint32, n int) ([]bool, error) {
	if len(ids) > n {
		return nil, fmt.Errorf("%d clients named, roster has %d", len(ids), n)
	}
	in := make([]bool, n)
	for i, id := range ids {
		if int64(id) >= int64(n) {
			return nil, fmt.Errorf("client index %d outside the roster of %d", id, n)
		}
		if i > 0 && id <= ids[i-1] {
			return nil, fmt.Errorf("client indices not strictly ascending at %d", id)
		}
		in[id] = true
	}
	return in, nil
}

// members lists the indices set in in, ascending.
func members(in []bool) []uint32 {
	var out []uint32
	for i, ok := range in {
		if ok {
			out = append(out, uint32(i))
		}
	}
	return out
}

func count(in []bool) int {
	n := 0
	for _, ok := range in {
		if ok {
			n++
		}
	}
	return n
}
