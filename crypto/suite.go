package crypto

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
)

// DefaultSuite is the suite used when a caller names none: Curve25519 with
// Elligator 2 hashing and X25519 blinding, about twice as fast per element as
// ristretto255 (see [X25519Elligator2]).
const DefaultSuite = X25519Elligator2

var (
	// ErrUnknownSuite is returned by Lookup for a name no suite is registered under.
	ErrUnknownSuite = errors.New("unknown crypto suite")
	// ErrInvalidElement is returned for bytes that are not the canonical encoding
	// of a non-identity group element of the suite.
	ErrInvalidElement = errors.New("invalid group element")
)

// Suite is a prime-order group with hash-to-group, as used by the ECDH-style
// protocols. Implementations are safe for concurrent use.
type Suite interface {
	// Name is the registry name, e.g. "ristretto255-sha512".
	Name() string
	// ElementSize is the length in bytes of every encoded element.
	ElementSize() int
	// NewKey draws a fresh secret scalar (non-zero) from rand.
	NewKey(rand io.Reader) (Key, error)
	// Validate reports whether in is the canonical encoding of a non-identity
	// element; it returns an error wrapping ErrInvalidElement otherwise.
	Validate(in []byte) error
	// HashToElement writes the encoding of H(msg) to out, where H is the suite's
	// RFC 9380 random-oracle hash-to-group with domain-separation tag dst.
	// The result is an unkeyed hash: it must never be sent to a peer. It exists
	// for tests and known-answer vectors.
	HashToElement(out, msg, dst []byte) error
}

// Key is a secret scalar k of a suite. It is safe for concurrent use.
type Key interface {
	// Suite is the suite the key belongs to.
	Suite() Suite
	// HashBlind writes the encoding of k·H(msg) to out (len ElementSize), with
	// H domain-separated by dst.
	HashBlind(out, msg, dst []byte) error
	// Blind decodes and validates in and writes the encoding of k·P to out.
	// in and out may alias.
	Blind(out, in []byte) error
	// String prints a redacted description, never the secret.
	String() string
}

// FloorKey is implemented by keys that can run the primitive floor of
// ECDH-PSI for one item: H(msg) and two scalar multiplications, without any
// encoding or decoding. Benchmarks use it to state protocol cost as a ratio
// to what the curve arithmetic cannot avoid.
type FloorKey interface {
	Floor(msg, dst []byte)
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Suite{}
)

// Register adds s to the registry under s.Name(). It panics on a duplicate
// name, as that is a programming error.
func Register(s Suite) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[s.Name()]; dup {
		panic("crypto: suite registered twice: " + s.Name())
	}
	registry[s.Name()] = s
}

// Lookup returns the suite registered under name; the empty name means
// DefaultSuite.
func Lookup(name string) (Suite, error) {
	if name == "" {
		name = DefaultSuite
	}
	registryMu.RLock()
	s, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (known suites: %v)", ErrUnknownSuite, name, Names())
	}
	return s, nil
}

// Names lists the registered suite names, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DST builds the domain-separation tag for hash-to-group in one protocol
// session: it names xnode, the protocol, the suite and the session id, so no
// hash value is ever reusable across protocols, suites or sessions.
// The result is at most 255 bytes as RFC 9380 §5.3.3 requires, for protocol
// names up to 64 bytes and session ids up to 64 bytes.
func DST(protocol, suite string, session []byte) []byte {
	return []byte("xnode-v1:" + protocol + ":" + suite + ":" + hex.EncodeToString(session))
}

// Count returns how many elements of size bytes a packed slice b holds, or an
// error if its length is not a multiple of size.
func Count(b []byte, size int) (int, error) {
	if size <= 0 || len(b)%size != 0 {
		return 0, fmt.Errorf("%w: packed length %d is not a multiple of %d", ErrInvalidElement, len(b), size)
	}
	return len(b) / size, nil
}
