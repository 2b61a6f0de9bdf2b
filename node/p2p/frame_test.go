package p2p

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"xnode/protocol"
)

// A length prefix over the limit is refused before anything is allocated
// or reserved for it.
func TestReadFrameRefusesLargePrefixWithoutAllocating(t *testing.T) {
	for _, n := range []uint64{protocol.MaxMessageSize + 1, 1 << 40, 1<<64 - 1} {
		in := binary.AppendUvarint(nil, n)
		reserved := false
		reserve := func(int) error { reserved = true; return nil }
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := readFrame(bufio.NewReader(bytes.NewReader(in)), protocol.MaxMessageSize, reserve)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, protocol.ErrMessageTooLarge) {
			t.Errorf("readFrame(prefix %d) = %v, want ErrMessageTooLarge", n, err)
		}
		if reserved {
			t.Errorf("readFrame(prefix %d) reserved memory, want refusal first", n)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
			t.Errorf("readFrame(prefix %d) allocated %d bytes, want < 64 KiB", n, grew)
		}
	}
}

func TestReadFrame(t *testing.T) {
	var in []byte
	for _, m := range []string{"", "a", string(make([]byte, 300))} {
		in = binary.AppendUvarint(in, uint64(len(m)))
		in = append(in, m...)
	}
	r := bufio.NewReader(bytes.NewReader(append(in, 5, 'x')))
	for i, want := range []int{0, 1, 300} {
		got, err := readFrame(r, protocol.MaxMessageSize, nil)
		if err != nil || len(got) != want {
			t.Fatalf("frame %d: %d bytes, %v; want %d bytes", i, len(got), err, want)
		}
	}
	if _, err := readFrame(r, protocol.MaxMessageSize, nil); err == nil || errors.Is(err, errStreamEnded) {
		t.Errorf("truncated frame: err = %v, want unexpected EOF", err)
	}
}
