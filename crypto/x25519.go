package crypto

import (
	"crypto/subtle"
	"fmt"
	"io"

	"filippo.io/edwards25519/field"
	"github.com/cloudflare/circl/dh/x25519"
)

// X25519Elligator2 is the name of the Curve25519 suite: RFC 9380
// curve25519_XMD:SHA-512_ELL2_RO_ hashing, X25519 blinding (RFC 7748), and
// elements encoded as 32-byte little-endian Montgomery u-coordinates.
//
// # Commutativity
//
// A key is 32 random bytes clamped as RFC 7748 §5 does: bits 0–2 cleared,
// bit 255 cleared, bit 254 set. Blinding is X25519(k, u), the u-coordinate
// of [k]P for either point P with that u. The u-coordinate of a point
// determines the point up to sign, and [k](−P) = −[k]P, so X25519 is well
// defined on u-coordinates and X25519(a, X25519(b, u)) = u([a][b]P) =
// u([b][a]P) = X25519(b, X25519(a, u)): scalar multiplication commutes, and
// clamping is applied identically on both sides. Because every clamped
// scalar is a multiple of 8, the cofactor, [k]P has no low-order component:
// every blinded value lies in the prime-order subgroup of order
// ℓ = 2^252 + 27742317777372353535851937790883648493, whatever P was.
//
// # Security of the x-only representation
//
// ECDH-PSI needs the DDH assumption in the group where values are compared
// (Meadows 1986; Huberman, Franklin, Hogg 1999). Here that group is the
// prime-order subgroup of Curve25519 modulo ±1: a value travels as the
// u-coordinate, which identifies the pair {P, −P}. Map the pair to P' = the
// one of ±P, and the protocol is the classic one in a group of prime order
// ℓ, in which DDH is believed hard (it is the assumption X25519 key agreement
// rests on). A point and its negative share a u-coordinate; this is harmless
// here because both parties compute and compare the same u: H(x) and −H(x)
// are blinded to ±[ab]H(x), which again share one u, and no value with a
// different u could be confused with it. Honest H(x) are independent of the
// sign, so nothing about an identifier is revealed by dropping it.
//
// Clamping makes the effective scalar set {8·(2^251 + i)} rather than all of
// Z/ℓ: still 2^251 distinct scalars per key, each non-zero mod ℓ, so every
// blinding is a permutation of the subgroup and the (statistical) distance to
// a uniform scalar does not help a DDH distinguisher beyond the usual X25519
// analysis.
//
// # Validation
//
// Validate (and so Blind) accepts exactly 32 bytes whose value u satisfies
// u < p = 2^255 − 19, which forces bit 255 to be clear: RFC 7748 §5 masks
// that bit and reduces non-canonical values, but xnode refuses both so every
// element has exactly one encoding. It then refuses the u-coordinates of all
// low-order points, for which X25519 would return zero or leak k mod 8:
//
//	u = 0                    order 2 (and order 1 by the X25519 convention)
//	u = 1                    order 4
//	u = p − 1                order 4 on the quadratic twist
//	u = 0x00b8495f…e0 / 0x57119fd0…5f   the two u-coordinates of the points
//	                         of order 8
//
// as listed by Bernstein, https://cr.yp.to/ecdh.html#validate, and in circl's
// dh/x25519 (curve.go, lowOrderPoints). Blind also refuses an all-zero
// X25519 output (RFC 7748 §6.1). Other inputs — including points with a
// low-order component and points on the quadratic twist — are accepted, as
// the X25519 function is designed for: the clamped scalar kills any component
// of order dividing 8, and the twist's order is 4·ℓ' with ℓ' prime, so no
// small subgroup exists to probe. A twist point's multiple is again on the
// twist and never equals an honest (on-curve) value, so it cannot cause a
// false match. A full on-curve check would cost one more exponentiation per
// element for no protocol benefit.
//
// # Collisions
//
// Doubly-blinded u-coordinates of distinct identifiers are distinct (the map
// x ↦ H(x) is a random oracle into a group of order ℓ ≈ 2^252, so two
// identifiers collide with probability about 2^-251 per pair), and the
// ECDH-PSI package compares 16-byte digests of them: a false match among
// |X|·|Y| pairs has probability at most |X|·|Y|·2^-128 (see that package).
const X25519Elligator2 = "x25519-elligator2"

func init() {
	Register(x25519Suite{})
}

// x25519Size is the length of an encoded element and of a key.
const x25519Size = x25519.Size

// x25519LowOrder lists the canonical u-coordinates of the low-order points
// (see X25519Elligator2). The same five values appear in circl's dh/x25519.
var x25519LowOrder = [5][32]byte{
	{}, // u = 0
	{1},
	{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
		0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // u = p − 1
}

// x25519Suite is the x25519-elligator2 suite. It has no state.
type x25519Suite struct{}

func (x25519Suite) Name() string     { return X25519Elligator2 }
func (x25519Suite) ElementSize() int { return x25519Size }

// NewKey reads 32 bytes from rand and clamps them (RFC 7748 §5). A clamped
// scalar is never zero modulo the subgroup order, so no draw is refused.
func (s x25519Suite) NewKey(rand io.Reader) (Key, error) {
	if rand == nil {
		return nil, fmt.Errorf("crypto: NewKey needs a randomness source")
	}
	k := new(x25519Key)
	if _, err := io.ReadFull(rand, k.k[:]); err != nil {
		clear(k.k[:])
		return nil, fmt.Errorf("failed to draw a %s scalar: %w", X25519Elligator2, err)
	}
	k.k[0] &= 248
	k.k[31] = k.k[31]&127 | 64
	return k, nil
}

// decode checks in as described under Validation and returns it as an array.
func (x25519Suite) decode(in []byte) (u x25519.Key, err error) {
	if len(in) != x25519Size {
		return u, fmt.Errorf("%w: %d bytes, want %d for %s", ErrInvalidElement, len(in), x25519Size, X25519Elligator2)
	}
	copy(u[:], in)
	// field.Element.SetBytes ignores bit 255 and reduces mod p; Bytes is
	// canonical. Equality therefore means u < p with bit 255 clear.
	var fe field.Element
	if _, err := fe.SetBytes(u[:]); err != nil {
		return u, fmt.Errorf("%w: %v", ErrInvalidElement, err)
	}
	if subtle.ConstantTimeCompare(fe.Bytes(), u[:]) != 1 {
		return u, fmt.Errorf("%w: non-canonical %s encoding", ErrInvalidElement, X25519Elligator2)
	}
	low := 0
	for i := range x25519LowOrder {
		low |= subtle.ConstantTimeCompare(x25519LowOrder[i][:], u[:])
	}
	if low != 0 {
		return u, fmt.Errorf("%w: low-order point", ErrInvalidElement)
	}
	return u, nil
}

func (s x25519Suite) Validate(in []byte) error {
	_, err := s.decode(in)
	return err
}

func (x25519Suite) HashToElement(out, msg, dst []byte) error {
	if len(out) < x25519Size {
		return fmt.Errorf("crypto: output of %d bytes, want %d", len(out), x25519Size)
	}
	var u [32]byte
	if !hashToCurve25519(&u, msg, dst) {
		return fmt.Errorf("%w: hash to curve gave the neutral element", ErrInvalidElement)
	}
	copy(out, u[:])
	return nil
}

// x25519Key is a clamped X25519 scalar.
type x25519Key struct {
	k x25519.Key
}

func (*x25519Key) Suite() Suite   { return x25519Suite{} }
func (*x25519Key) String() string { return "crypto.Key(" + X25519Elligator2 + ", redacted)" }

// Format prints the redacted description for every verb (%x, %#v and %+v
// included), so the scalar array is never printed.
func (k *x25519Key) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// mul writes X25519(k, u) to out and refuses the all-zero result.
func (k *x25519Key) mul(out []byte, u *x25519.Key) error {
	var r x25519.Key
	x25519.Shared(&r, &k.k, u)
	var zero x25519.Key
	if subtle.ConstantTimeCompare(r[:], zero[:]) == 1 {
		return fmt.Errorf("%w: X25519 output is zero", ErrInvalidElement)
	}
	copy(out, r[:])
	return nil
}

func (k *x25519Key) HashBlind(out, msg, dst []byte) error {
	if len(out) < x25519Size {
		return fmt.Errorf("crypto: output of %d bytes, want %d", len(out), x25519Size)
	}
	var u x25519.Key
	if !hashToCurve25519((*[32]byte)(&u), msg, dst) {
		return fmt.Errorf("%w: hash to curve gave the neutral element", ErrInvalidElement)
	}
	return k.mul(out, &u)
}

func (k *x25519Key) Blind(out, in []byte) error {
	if len(out) < x25519Size {
		return fmt.Errorf("crypto: output of %d bytes, want %d", len(out), x25519Size)
	}
	u, err := x25519Suite{}.decode(in) // copies in, so out may alias it
	if err != nil {
		return err
	}
	return k.mul(out, &u)
}

// Floor is H(msg) and two X25519 multiplications, with no validation.
func (k *x25519Key) Floor(msg, dst []byte) {
	var u, r x25519.Key
	hashToCurve25519((*[32]byte)(&u), msg, dst)
	x25519.Shared(&r, &k.k, &u)
	x25519.Shared(&u, &k.k, &r)
}
