package oprf

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/oprf"
)

// ProtocolID is the stream protocol of this package's wire format.
const ProtocolID = "/xnode/psi-oprf/1.0.0"

// SuiteName is the one RFC 9497 suite this package speaks, in VOPRF mode.
const SuiteName = "ristretto255-SHA512"

var suite = oprf.SuiteRistretto255

// Sizes and limits.
const (
	// Version is the wire version carried in Hello.
	Version = 1
	// ElementSize is the size of an encoded ristretto255 element.
	ElementSize = 32
	// ScalarSize is the size of an encoded ristretto255 scalar.
	ScalarSize = 32
	// ProofSize is the size of an encoded batch DLEQ proof (c ‖ s).
	ProofSize = 64
	// OutputSize is the size of an OPRF output (SHA-512).
	OutputSize = 64
	// TagSize is the size of an item's tag in the labeled encoding.
	TagSize = 16
	// ProofGroup is the number of elements covered by one batch DLEQ proof.
	// The groups of one query are blinded, evaluated and verified in
	// parallel.
	ProofGroup = 256
	// DefaultBatchSize is the number of elements per Query message.
	DefaultBatchSize = 4096
	// MaxBatchSize bounds the elements of one Query (2 MiB of elements).
	MaxBatchSize = 1 << 16
	// DefaultWindow is how many queries the querier keeps outstanding.
	DefaultWindow = 2
	// MaxLabelSize bounds one item's labels.
	MaxLabelSize = 4096
	// DefaultFPRBits is log2(1/ε) of the membership form's per-lookup false
	// positive rate ε: 2^-44 ≈ 5.7e-14.
	DefaultFPRBits = 44
	// MinFPRBits and MaxFPRBits bound EpochConfig.FPRBits.
	MinFPRBits, MaxFPRBits = 16, 54
	// BucketBits is log2 of the mean number of items per Golomb-coded bucket
	// at the epoch's expected size.
	BucketBits = 9
	// DefaultChunkSize is the size of serialised chunks the responder sends.
	DefaultChunkSize = 1 << 20
	// MinChunkSize is the smallest chunk size accepted.
	MinChunkSize = 16 << 10
	// DefaultMaxItems bounds the items of an encoding a querier accepts.
	DefaultMaxItems = 200_000_000
	// DefaultMaxQueryItems bounds the identifiers of one session a
	// responder evaluates.
	DefaultMaxQueryItems = 10_000_000
)

// Errors.
var (
	// ErrProtocol marks a peer message that breaks the protocol: wrong type,
	// order, size or content. The session cannot continue.
	ErrProtocol = errors.New("psi-oprf protocol violation")
	// ErrMalformed marks a serialised encoding, delta or epoch that does
	// not decode.
	ErrMalformed = errors.New("psi-oprf: malformed data")
	// ErrProof is returned when an evaluation's DLEQ proof does not verify
	// against the responder's committed public key.
	ErrProof = errors.New("psi-oprf: the responder's DLEQ proof does not verify against its committed key")
	// ErrStale is returned when an encoding or delta belongs to another
	// epoch, key or version than the one it is used with.
	ErrStale = errors.New("psi-oprf: encoding does not match the responder's current commitment")
	// ErrCommitment is returned when the responder's commitment differs from
	// the one the querier pinned.
	ErrCommitment = errors.New("psi-oprf: the responder's commitment differs from the pinned one")
	// ErrRefused is wrapped by every refusal the responder sends.
	ErrRefused = errors.New("psi-oprf: the responder refused")
	// ErrRefusedBudget: the querier's evaluation budget is exhausted; ask
	// the responder's operator to raise it or wait for the next period.
	ErrRefusedBudget = fmt.Errorf("%w: evaluation budget exhausted", ErrRefused)
	// ErrRefusedTooLarge: the session asks for more evaluations, or larger
	// batches, than the responder allows; split it.
	ErrRefusedTooLarge = fmt.Errorf("%w: too many identifiers for one session", ErrRefused)
	// ErrRefusedUnsupported: the responder does not serve this version,
	// suite or form.
	ErrRefusedUnsupported = fmt.Errorf("%w: protocol version, suite or form not served", ErrRefused)
	// ErrDuplicate is returned by Encode for two items with the same key.
	ErrDuplicate = errors.New("psi-oprf: duplicate item key")
)

// Form is the shape of an encoding.
type Form int

// Forms.
const (
	// Labeled: per item a 16-byte tag and the AEAD-sealed labels.
	Labeled Form = iota + 1
	// Membership: a Golomb-coded set of truncated tags, no labels.
	Membership
)

func (f Form) String() string {
	switch f {
	case Labeled:
		return "labeled"
	case Membership:
		return "membership"
	}
	return fmt.Sprintf("Form(%d)", int(f))
}

// SyncKind is what a session transferred to bring the querier's encoding up
// to date.
type SyncKind int

// Sync kinds.
const (
	SyncCurrent SyncKind = iota + 1 // the cached encoding was current
	SyncFull                        // a full encoding was sent
	SyncDeltas                      // deltas were sent
)

func (k SyncKind) String() string {
	switch k {
	case SyncCurrent:
		return "current"
	case SyncFull:
		return "full"
	case SyncDeltas:
		return "deltas"
	}
	return fmt.Sprintf("SyncKind(%d)", int(k))
}

// Commitment is what a responder publishes for an epoch: its id and the
// VOPRF public key every evaluation of the epoch is proven against. The node
// publishes it to the consortium (and its audit chain), so that every querier
// can check it is served the same key.
type Commitment struct {
	Epoch     uint64
	PublicKey [ElementSize]byte
}

func (c Commitment) String() string {
	return fmt.Sprintf("psi-oprf-commitment(epoch=%d, pk=%s)", c.Epoch, hex.EncodeToString(c.PublicKey[:]))
}

// Item is one entry of the responder's list: the normalised, namespaced
// identifier and its labels (opaque bytes, at most MaxLabelSize; the node
// serialises the label columns into them).
type Item struct {
	Key    []byte
	Labels []byte
}

// Match is one of the querier's identifiers found in the responder's
// encoding.
type Match struct {
	// Index is the position of the identifier in the querier's input.
	Index int
	// Labels are the item's labels (nil in the membership form).
	Labels []byte
}

func putU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
