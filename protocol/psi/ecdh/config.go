package ecdh

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"xnode/crypto"
	"xnode/protocol/psi/ecdh/pb"
)

// ProtocolID is the stream protocol of this package's wire format.
const ProtocolID = "/xnode/psi-ecdh/1.0.0"

// Wire and size constants.
const (
	// Version is the wire version carried in Hello.
	Version = 1
	// DefaultBatchSize is the number of elements per batch message.
	DefaultBatchSize = 4096
	// MaxBatchSize bounds the batch size either side accepts, so that a batch
	// message stays far below protocol.MaxMessageSize for every suite.
	MaxBatchSize = 1 << 16
	// DigestSize is the length of the truncated digests compared at the end.
	DigestSize = 16
	// DefaultWindow is how many query batches the querier keeps outstanding
	// in the intersection modes.
	DefaultWindow = 4
	// DefaultMaxPeerSize bounds the other side's declared set size.
	DefaultMaxPeerSize = 200_000_000
	// maxSetSize is what positions (uint32) can address.
	maxSetSize = 1<<32 - 1
)

// ErrProtocol marks a peer message that breaks the protocol: wrong type,
// order, size or content. The session cannot continue.
var ErrProtocol = errors.New("ecdh-psi protocol violation")

// ErrMismatch is returned by the responder when the querier's Hello names a
// different suite, mode, session or version than the responder agreed to.
var ErrMismatch = errors.New("ecdh-psi session parameters differ")

// Mode selects what the session reveals.
type Mode int

// Modes.
const (
	// Intersection: the querier learns which of its items are shared.
	Intersection Mode = iota + 1
	// IntersectionBoth: both parties learn which of their items are shared.
	IntersectionBoth
	// Cardinality: the querier learns only how many items are shared.
	Cardinality
)

var modeNames = map[Mode]string{
	Intersection:     "intersection",
	IntersectionBoth: "intersection-both",
	Cardinality:      "cardinality",
}

func (m Mode) String() string {
	if s, ok := modeNames[m]; ok {
		return s
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses a mode name as printed by Mode.String.
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if name == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown ECDH-PSI mode %q (want intersection, intersection-both or cardinality)", s)
}

func (m Mode) pb() pb.Mode {
	switch m {
	case Intersection:
		return pb.Mode_MODE_INTERSECTION
	case IntersectionBoth:
		return pb.Mode_MODE_INTERSECTION_BOTH
	case Cardinality:
		return pb.Mode_MODE_CARDINALITY
	}
	return pb.Mode_MODE_UNSPECIFIED
}

func (m Mode) perBatchReplies() bool { return m == Intersection || m == IntersectionBoth }

// Config is what both parties agree on before a session, plus local tuning.
type Config struct {
	// Suite is the group; both sides must use the same one.
	Suite crypto.Suite
	// Mode is what the session reveals; both sides must agree.
	Mode Mode
	// Session identifies the session (1 to 64 bytes); both sides must use the
	// same one. It separates the hash domain of every session.
	Session []byte
	// BatchSize is elements per batch message this side sends (default
	// DefaultBatchSize, at most MaxBatchSize).
	BatchSize int
	// Window is the querier's number of outstanding query batches in the
	// intersection modes (default DefaultWindow).
	Window int
	// Workers bounds the goroutines of one call (default GOMAXPROCS).
	Workers int
	// Rand is the source of the secret scalar and the shuffle (default
	// crypto/rand).
	Rand io.Reader
	// MaxPeerSize refuses a peer that declares a larger set (default
	// DefaultMaxPeerSize).
	MaxPeerSize int
	// QuerierSize, if positive, is the set size the querier agreed to before
	// the session (the node: the size in the signed proposal its policy
	// checked). The responder refuses a Hello declaring another size with
	// ErrMismatch, so a querier cannot run a smaller set than was approved.
	// The querier ignores it.
	QuerierSize int
}

func (c Config) withDefaults() (Config, error) {
	if c.Suite == nil {
		return c, errors.New("ecdh-psi: no suite configured")
	}
	if _, ok := modeNames[c.Mode]; !ok {
		return c, fmt.Errorf("ecdh-psi: %v is not a mode", c.Mode)
	}
	if len(c.Session) == 0 || len(c.Session) > 64 {
		return c, fmt.Errorf("ecdh-psi: session id of %d bytes, want 1 to 64", len(c.Session))
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		return c, fmt.Errorf("ecdh-psi: batch size %d, want 1 to %d", c.BatchSize, MaxBatchSize)
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Window < 1 {
		return c, fmt.Errorf("ecdh-psi: window %d, want at least 1", c.Window)
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.MaxPeerSize == 0 {
		c.MaxPeerSize = DefaultMaxPeerSize
	}
	if c.QuerierSize < 0 {
		return c, fmt.Errorf("ecdh-psi: querier size %d, want 0 (any) or more", c.QuerierSize)
	}
	return c, nil
}

// Source yields a party's items in a fixed order. Positions in a Result are
// positions in that order.
type Source interface {
	// Len is the number of items Next yields in all.
	Len() int
	// Next fills dst with up to len(dst) next items and returns how many it
	// wrote; at the end it returns 0 and io.EOF. The machine does not retain
	// the item slices after the call that consumed them.
	Next(dst [][]byte) (int, error)
}

// Slice returns a Source over items held in memory.
func Slice(items [][]byte) Source { return &sliceSource{items: items} }

type sliceSource struct {
	items [][]byte
	off   int
}

func (s *sliceSource) Len() int { return len(s.items) }

func (s *sliceSource) Next(dst [][]byte) (int, error) {
	if s.off >= len(s.items) {
		return 0, io.EOF
	}
	n := copy(dst, s.items[s.off:])
	s.off += n
	return n, nil
}

// Result is what a party learned from a session.
type Result struct {
	// Mode is the session's mode.
	Mode Mode
	// PeerSize is the other party's set size.
	PeerSize int
	// Cardinality is the number of distinct shared items. The querier knows it
	// in every mode; the responder only in IntersectionBoth.
	Cardinality int
	// Matches are positions, ascending, of this party's items that are in the
	// other's set: the querier's in the intersection modes, the responder's in
	// IntersectionBoth. Nil otherwise.
	Matches []int
}

// Phase names one step of a session, for progress and timings.
type Phase string

// Phases, in the order a session runs through them.
const (
	PhaseHandshake Phase = "handshake"
	PhaseQuery     Phase = "query"  // querier: hash and blind X
	PhaseReply     Phase = "reply"  // responder: re-blind X, digest
	PhasePeer      Phase = "peer"   // responder: hash and blind Y, shuffle
	PhaseMatch     Phase = "match"  // querier: re-blind Y, digest, look up
	PhaseFinish    Phase = "finish" // matches back to the responder
	PhaseDone      Phase = "done"
)
