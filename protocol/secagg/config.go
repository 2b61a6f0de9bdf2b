package secagg

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// ProtocolID is the stream protocol of this package's wire format.
const ProtocolID = "/xnode/secagg/1.0.0"

// Size limits. Every received message is checked against them (and against
// protocol.MaxMessageSize) before it is decoded further.
const (
	// MaxClients bounds the roster.
	MaxClients = 1024
	// MaxVectorLen bounds the vector length (32 MiB of uint64s). The server
	// holds at most one partial vector per client plus the running sum.
	MaxVectorLen = 1 << 22
	// ChunkLen is the number of elements per MaskedInput message (512 KiB),
	// well below protocol.MaxMessageSize.
	ChunkLen = 1 << 16
	// MaxSessionLen bounds the session id.
	MaxSessionLen = 64
	// MaxSignatureLen bounds a signature from the Signer.
	MaxSignatureLen = 256
	// MaxClientIDLen bounds a client id.
	MaxClientIDLen = 256
)

// Sentinel errors. Errors returned by this package wrap one of them.
var (
	// ErrProtocol marks a message that breaks the protocol: malformed, out of
	// order, oversized or with content that does not fit the session.
	ErrProtocol = errors.New("secagg: protocol violation")
	// ErrBadSignature marks a key advertisement or consistency signature
	// that does not verify.
	ErrBadSignature = errors.New("secagg: bad signature")
	// ErrInconsistent marks a server whose requests contradict each other or
	// what the client saw: a survivor set that is not the one the client
	// signed, a client named both survivor and dropped, a dropped set other
	// than U2 \ U3, too few consistency signatures. A client refuses such a
	// server and reveals nothing.
	ErrInconsistent = errors.New("secagg: server sent an inconsistent view")
	// ErrTooFewSurvivors is the clean abort when fewer than t clients remain
	// at some round: nothing is revealed and there is no partial result.
	ErrTooFewSurvivors = errors.New("secagg: fewer than threshold clients remain")
	// ErrNotDone is returned by Server.Result before the session has ended.
	ErrNotDone = errors.New("secagg: session not finished")
)

// ClientID names a client: in the node, the string form of its peer ID.
type ClientID string

// Signer signs with a client's long-term identity key (the node's Ed25519
// key). It signs key advertisements and the consistency check.
type Signer interface {
	Sign(msg []byte) ([]byte, error)
}

// SignerFunc adapts a function to Signer.
type SignerFunc func(msg []byte) ([]byte, error)

// Sign implements Signer.
func (f SignerFunc) Sign(msg []byte) ([]byte, error) { return f(msg) }

// Verifier reports whether sig is id's valid signature of msg: the node
// checks it with the member's certified key.
type Verifier func(id ClientID, msg, sig []byte) bool

// Config is what every party of a session agrees on before it starts.
type Config struct {
	// Session identifies the session (1 to MaxSessionLen bytes). It is bound
	// into every signature and every key derivation.
	Session []byte
	// Clients is the roster, in an order every party agrees on (for example
	// sorted). A client's index in it names the client on the wire, is the
	// x-coordinate (index+1) of the Shamir shares it receives, and orders the
	// pairwise masks.
	Clients []ClientID
	// Threshold t: the number of clients that must remain at every round,
	// and the number of shares that reconstruct a secret, so also the fewest
	// inputs a revealed sum covers. It must be a strict majority of the
	// roster (t > n/2, see the package doc) and at least 2; it may be more.
	Threshold int
	// VectorLen is the number of uint64 elements each client contributes
	// (1 to MaxVectorLen).
	VectorLen int
	// Verify checks identity signatures. Required.
	Verify Verifier
	// Rand is the source of every secret (default crypto/rand).
	Rand io.Reader
}

// check validates c and returns it with defaults filled in, and the roster
// index of every client.
func (c Config) check() (Config, map[ClientID]int, error) {
	if len(c.Session) == 0 || len(c.Session) > MaxSessionLen {
		return c, nil, fmt.Errorf("secagg: session id of %d bytes, want 1 to %d", len(c.Session), MaxSessionLen)
	}
	n := len(c.Clients)
	if n < 2 || n > MaxClients {
		return c, nil, fmt.Errorf("secagg: %d clients, want 2 to %d", n, MaxClients)
	}
	idx := make(map[ClientID]int, n)
	for i, id := range c.Clients {
		if id == "" || len(id) > MaxClientIDLen {
			return c, nil, fmt.Errorf("secagg: client %d has an id of %d bytes, want 1 to %d", i, len(id), MaxClientIDLen)
		}
		if _, dup := idx[id]; dup {
			return c, nil, fmt.Errorf("secagg: client %q listed twice", id)
		}
		idx[id] = i
	}
	if c.Threshold < 2 || c.Threshold > n || 2*c.Threshold <= n {
		return c, nil, fmt.Errorf("secagg: threshold %d for %d clients, want a strict majority (%d to %d) and at least 2", c.Threshold, n, max(2, n/2+1), n)
	}
	if c.VectorLen < 1 || c.VectorLen > MaxVectorLen {
		return c, nil, fmt.Errorf("secagg: vector length %d, want 1 to %d", c.VectorLen, MaxVectorLen)
	}
	if c.Verify == nil {
		return c, nil, errors.New("secagg: no signature verifier configured")
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	c.Clients = append([]ClientID(nil), c.Clients...)
	c.Session = append([]byte(nil), c.Session...)
	return c, idx, nil
}

// Round names a step of the session.
type Round int

// Rounds, in order.
const (
	// RoundAdvertise: clients send their signed public keys.
	RoundAdvertise Round = iota
	// RoundShareKeys: clients send encrypted shares of their secrets.
	RoundShareKeys
	// RoundMaskedInput: clients send their masked vectors.
	RoundMaskedInput
	// RoundConsistency: clients sign the survivor set U3.
	RoundConsistency
	// RoundUnmask: clients reveal shares to remove the masks.
	RoundUnmask
	// RoundDone: the session ended, with a result or an error.
	RoundDone
)

var roundNames = [...]string{"advertise", "share-keys", "masked-input", "consistency", "unmask", "done"}

func (r Round) String() string {
	if r >= 0 && int(r) < len(roundNames) {
		return roundNames[r]
	}
	return fmt.Sprintf("Round(%d)", int(r))
}

// Outgoing is a message the server sends to one client.
type Outgoing struct {
	To  ClientID
	Msg []byte
}
