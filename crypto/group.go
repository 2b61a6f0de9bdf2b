package crypto

import (
	"crypto/subtle"
	"fmt"
	"io"
	"math/big"

	"github.com/cloudflare/circl/group"
)

func init() {
	Register(&groupSuite{name: "ristretto255-sha512", g: group.Ristretto255, size: 32})
	Register(&groupSuite{name: "p256-sha256", g: group.P256, size: 33, compressed: true})
}

// groupSuite is a Suite over a circl prime-order group.
type groupSuite struct {
	name       string
	g          group.Group
	size       int
	compressed bool // encode with MarshalBinaryCompress (SEC 1 compressed points)
}

func (s *groupSuite) Name() string     { return s.name }
func (s *groupSuite) ElementSize() int { return s.size }

func (s *groupSuite) NewKey(rand io.Reader) (Key, error) {
	if rand == nil {
		return nil, fmt.Errorf("crypto: NewKey needs a randomness source")
	}
	k, err := s.randomScalar(rand)
	if err != nil {
		return nil, fmt.Errorf("failed to draw a %s scalar: %w", s.name, err)
	}
	return &groupKey{s: s, k: k}, nil
}

// randomScalar draws a uniform non-zero scalar from rand by wide reduction:
// ScalarLength+16 bytes reduced modulo the group order (bias below 2^-128).
// circl's RandomNonZeroScalar is not used because its ristretto255 version
// ignores the reader and always reads crypto/rand, which breaks reproducible
// keys and hides a failing reader.
func (s *groupSuite) randomScalar(rand io.Reader) (group.Scalar, error) {
	wide := make([]byte, s.g.Params().ScalarLength+16)
	for {
		if _, err := io.ReadFull(rand, wide); err != nil {
			return nil, err
		}
		k := s.g.NewScalar().SetBigInt(new(big.Int).SetBytes(wide))
		clear(wide)
		if !k.IsZero() {
			return k, nil
		}
	}
}

func (s *groupSuite) decode(in []byte) (group.Element, error) {
	if len(in) != s.size {
		return nil, fmt.Errorf("%w: %d bytes, want %d for %s", ErrInvalidElement, len(in), s.size, s.name)
	}
	e := s.g.NewElement()
	if err := e.UnmarshalBinary(in); err != nil {
		return nil, fmt.Errorf("%w: not a canonical %s encoding", ErrInvalidElement, s.name)
	}
	if e.IsIdentity() {
		return nil, fmt.Errorf("%w: identity element", ErrInvalidElement)
	}
	// circl accepts both compressed and uncompressed forms for P-256; the fixed
	// length above already pins the compressed one. Re-encoding and comparing
	// makes "canonical" explicit for every suite.
	b, err := s.marshal(e)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(b, in) != 1 {
		return nil, fmt.Errorf("%w: non-canonical %s encoding", ErrInvalidElement, s.name)
	}
	return e, nil
}

// marshal encodes e in the suite's fixed-size form.
func (s *groupSuite) marshal(e group.Element) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	if s.compressed {
		b, err = e.MarshalBinaryCompress()
	} else {
		b, err = e.MarshalBinary()
	}
	if err != nil {
		return nil, fmt.Errorf("failed to encode a %s element: %w", s.name, err)
	}
	if len(b) != s.size {
		return nil, fmt.Errorf("%w: encoding of %d bytes, want %d", ErrInvalidElement, len(b), s.size)
	}
	return b, nil
}

func (s *groupSuite) put(out []byte, e group.Element) error {
	if len(out) < s.size {
		return fmt.Errorf("crypto: output of %d bytes, want %d", len(out), s.size)
	}
	b, err := s.marshal(e)
	if err != nil {
		return err
	}
	copy(out, b)
	return nil
}

func (s *groupSuite) Validate(in []byte) error {
	_, err := s.decode(in)
	return err
}

func (s *groupSuite) HashToElement(out, msg, dst []byte) error {
	return s.put(out, s.g.HashToElement(msg, dst))
}

// groupKey is a secret scalar of a groupSuite.
type groupKey struct {
	s *groupSuite
	k group.Scalar
}

func (k *groupKey) Suite() Suite   { return k.s }
func (k *groupKey) String() string { return "crypto.Key(" + k.s.name + ", redacted)" }

func (k *groupKey) HashBlind(out, msg, dst []byte) error {
	e := k.s.g.HashToElement(msg, dst)
	e.Mul(e, k.k)
	return k.s.put(out, e)
}

func (k *groupKey) Blind(out, in []byte) error {
	e, err := k.s.decode(in)
	if err != nil {
		return err
	}
	e.Mul(e, k.k)
	return k.s.put(out, e)
}

func (k *groupKey) Floor(msg, dst []byte) {
	e := k.s.g.HashToElement(msg, dst)
	e.Mul(e, k.k)
	e.Mul(e, k.k)
}
