package secagg

import (
	"encoding/binary"
	"fmt"

	"xnode/protocol/internal/wire"
	"xnode/protocol/secagg/pb"
)

func encode(env *pb.Envelope) ([]byte, error) { return wire.Encode("secagg", env) }

// decode parses one frame: exactly one known message within the size cap.
func decode(msg []byte) (*pb.Envelope, error) { return wire.Decode[pb.Envelope](msg, ErrProtocol) }

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
