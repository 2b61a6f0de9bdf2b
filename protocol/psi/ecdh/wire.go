package ecdh

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"xnode/protocol/internal/wire"
	"xnode/protocol/psi/ecdh/pb"
)

func encode(env *pb.Envelope) ([]byte, error) { return wire.Encode("ecdh-psi", env) }

// decode parses one frame: exactly one known message within the size cap.
func decode(msg []byte) (*pb.Envelope, error) { return wire.Decode[pb.Envelope](msg, ErrProtocol) }

// comparePrefix domain-separates the final digests by suite and session.
func comparePrefix(suite string, session []byte) []byte {
	b := []byte("xnode-v1:psi-ecdh:compare:" + suite + ":")
	b = binary.BigEndian.AppendUint16(b, uint16(len(session)))
	return append(b, session...)
}

// digester computes D(e) = SHA-256(prefix || e)[:DigestSize]. One per
// goroutine: it reuses its buffer.
type digester struct {
	buf    []byte
	prefix int
}

func newDigester(prefix []byte, elemSize int) *digester {
	buf := make([]byte, len(prefix), len(prefix)+elemSize)
	copy(buf, prefix)
	return &digester{buf: buf, prefix: len(prefix)}
}

func (d *digester) digest(out, elem []byte) {
	d.buf = append(d.buf[:d.prefix], elem...)
	sum := sha256.Sum256(d.buf)
	copy(out, sum[:DigestSize])
}

// Stats reports a machine's progress and where its time went. It is safe to
// read from another goroutine while the machine runs.
type Stats struct {
	// Phase is the current phase.
	Phase Phase
	// Done and Total count items of the current phase.
	Done, Total int64
	// Compute is the wall time spent computing inside the machine, per phase
	// (waiting for the peer is not included).
	Compute map[Phase]time.Duration
}

// meter is the mutable side of Stats.
type meter struct {
	mu      sync.Mutex
	phase   Phase
	done    int64
	total   int64
	compute map[Phase]time.Duration
}

func (m *meter) enter(p Phase, total int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.phase, m.done, m.total = p, 0, total
}

func (m *meter) add(p Phase, items int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.compute == nil {
		m.compute = make(map[Phase]time.Duration)
	}
	m.compute[p] += d
	if p == m.phase {
		m.done += int64(items)
	}
}

func (m *meter) stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := make(map[Phase]time.Duration, len(m.compute))
	for k, v := range m.compute {
		c[k] = v
	}
	return Stats{Phase: m.phase, Done: m.done, Total: m.total, Compute: c}
}
