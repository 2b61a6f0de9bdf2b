package crypto

import (
	"bytes"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// h2cVectors is the JSON layout of the RFC 9380 vectors in testdata (the
// format of the draft's poc/vectors files).
type h2cVectors struct {
	Ciphersuite string `json:"ciphersuite"`
	DST         string `json:"dst"`
	Vectors     []struct {
		Msg       string   `json:"msg"`
		U         []string `json:"u"`
		P, Q0, Q1 struct{ X, Y string }
	} `json:"vectors"`
}

func readH2CVectors(t *testing.T, name, suite string) h2cVectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var v h2cVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if v.Ciphersuite != suite || v.DST != "QUUX-V01-CS02-with-"+suite || len(v.Vectors) != 5 {
		t.Fatalf("%s holds %q (DST %q) with %d vectors, want %s with 5", name, v.Ciphersuite, v.DST, len(v.Vectors), suite)
	}
	return v
}

// fe parses a big-endian 0x-prefixed hex integer below p.
func fe(t *testing.T, s string) *field.Element {
	t.Helper()
	x, ok := new(big.Int).SetString(s, 0)
	if !ok || x.Cmp(p25519) >= 0 {
		t.Fatalf("bad field element %q", s)
	}
	return feFromBig(x)
}

func feHex(e *field.Element) string {
	b := e.Bytes()
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return new(big.Int).SetBytes(b).Text(16)
}

func checkFE(t *testing.T, what string, got *field.Element, want string) {
	t.Helper()
	if got.Equal(fe(t, want)) != 1 {
		t.Errorf("%s = 0x%s, want %s", what, feHex(got), want)
	}
}

// affine returns the affine (x, y) of an edwards25519 point.
func affine(p *edwards25519.Point) (x, y *field.Element) {
	X, Y, Z, _ := p.ExtendedCoordinates()
	zInv := new(field.Element).Invert(Z)
	return new(field.Element).Multiply(X, zInv), new(field.Element).Multiply(Y, zInv)
}

// edwardsToMontgomery is the inverse of the RFC 9380 §6.8.2 rational map:
// u = (1 + y) / (1 − y), v = sqrt(−486664)·u / x.
func edwardsToMontgomery(p *edwards25519.Point) (u, v *field.Element) {
	x, y := affine(p)
	u = new(field.Element).Add(feOne, y)
	u.Multiply(u, new(field.Element).Invert(new(field.Element).Subtract(feOne, y)))
	v = new(field.Element).Multiply(ell2C1, u)
	v.Multiply(v, new(field.Element).Invert(x))
	return u, v
}

// TestHashToCurve25519Vectors checks every curve25519_XMD:SHA-512_ELL2_RO_
// vector of RFC 9380 Appendix J.4.1: the two field elements u, the two
// Elligator 2 outputs Q0 and Q1 on curve25519 (G.2.1), the final point P
// (both coordinates, through the Edwards arithmetic and back), and the
// 32-byte little-endian u-coordinate the suite encodes.
func TestHashToCurve25519Vectors(t *testing.T) {
	vs := readH2CVectors(t, "curve25519_XMD-SHA-512_ELL2_RO_.json", "curve25519_XMD:SHA-512_ELL2_RO_")
	dst := []byte(vs.DST)
	for i, v := range vs.Vectors {
		msg := []byte(v.Msg)
		u0, u1 := hashToField25519(msg, dst)
		checkFE(t, "u[0]", &u0, v.U[0])
		checkFE(t, "u[1]", &u1, v.U[1])
		for j, q := range []struct {
			u    *field.Element
			x, y string
		}{{&u0, v.Q0.X, v.Q0.Y}, {&u1, v.Q1.X, v.Q1.Y}} {
			xn, xd, y := ell2Curve25519(q.u)
			x := new(field.Element).Multiply(&xn, new(field.Element).Invert(&xd))
			checkFE(t, "Q"+string(rune('0'+j))+".x", x, q.x)
			checkFE(t, "Q"+string(rune('0'+j))+".y", &y, q.y)
		}
		pu, pv := edwardsToMontgomery(hashToEdwards25519(msg, dst))
		checkFE(t, "P.x", pu, v.P.X)
		checkFE(t, "P.y", pv, v.P.Y)

		var got [32]byte
		if !hashToCurve25519(&got, msg, dst) {
			t.Fatalf("vector %d: hash gave the neutral element", i)
		}
		if want := fe(t, v.P.X).Bytes(); !bytes.Equal(got[:], want) {
			t.Errorf("vector %d: hashToCurve25519(%.20q) = %x, want %x", i, msg, got, want)
		}
	}
}

// TestHashToEdwards25519Vectors checks every edwards25519_XMD:SHA-512_ELL2_RO_
// vector of RFC 9380 Appendix J.5.1 (u, Q0, Q1 through the G.2.2 map, and P),
// the Edwards path the suite's hash runs on.
func TestHashToEdwards25519Vectors(t *testing.T) {
	vs := readH2CVectors(t, "edwards25519_XMD-SHA-512_ELL2_RO_.json", "edwards25519_XMD:SHA-512_ELL2_RO_")
	dst := []byte(vs.DST)
	for _, v := range vs.Vectors {
		msg := []byte(v.Msg)
		u0, u1 := hashToField25519(msg, dst)
		checkFE(t, "u[0]", &u0, v.U[0])
		checkFE(t, "u[1]", &u1, v.U[1])
		x, y := affine(ell2Edwards25519(&u0))
		checkFE(t, "Q0.x", x, v.Q0.X)
		checkFE(t, "Q0.y", y, v.Q0.Y)
		x, y = affine(ell2Edwards25519(&u1))
		checkFE(t, "Q1.x", x, v.Q1.X)
		checkFE(t, "Q1.y", y, v.Q1.Y)
		x, y = affine(hashToEdwards25519(msg, dst))
		checkFE(t, "P.x", x, v.P.X)
		checkFE(t, "P.y", y, v.P.Y)
	}
}

// TestEll2Constants checks the constants of Appendix G.2.1/G.2.2 by their
// defining equations.
func TestEll2Constants(t *testing.T) {
	sq := func(e *field.Element) *field.Element { return new(field.Element).Square(e) }
	minusOne := new(field.Element).Negate(feOne)
	if sq(ell2C3).Equal(minusOne) != 1 {
		t.Errorf("c3^2 = 0x%s, want -1", feHex(sq(ell2C3)))
	}
	if want := new(field.Element).Negate(feFromBig(big.NewInt(486664))); sq(ell2C1).Equal(want) != 1 || ell2C1.IsNegative() != 0 {
		t.Errorf("c1 = 0x%s: want sqrt(-486664) with sgn0 = 0", feHex(ell2C1))
	}
	// c2 = 2^((p+3)/8) satisfies c2^8 = 2^(p+3) = 2^4 · 2^(p−1) = 16.
	c8 := sq(sq(sq(ell2C2)))
	if c8.Equal(feFromBig(big.NewInt(16))) != 1 {
		t.Errorf("c2^8 = 0x%s, want 16", feHex(c8))
	}
}

// TestHashToCurveExceptional runs the maps on the field elements where
// Elligator 2 takes its special branches (u = 0 gives the order-2 point
// (0, 0), which the Edwards map sends to the identity as G.2.2 says) and
// checks the sum is still on the curve and the cofactor is cleared.
func TestHashToCurveExceptional(t *testing.T) {
	var zero field.Element
	xn, _, y := ell2Curve25519(&zero)
	if xn.Equal(&zero) != 1 || y.Equal(&zero) != 1 {
		t.Errorf("ell2Curve25519(0) = (0x%s, 0x%s), want the order-2 point (0, 0)", feHex(&xn), feHex(&y))
	}
	if p := ell2Edwards25519(&zero); p.Equal(edwards25519.NewIdentityPoint()) != 1 {
		t.Errorf("ell2Edwards25519(0) is not the identity")
	}
	// 8·(identity + Q) = 8·Q, and the order-ℓ check: ℓ·P = identity.
	var one field.Element
	one.One()
	q := ell2Edwards25519(&one)
	sum := new(edwards25519.Point).Add(ell2Edwards25519(&zero), q)
	if new(edwards25519.Point).MultByCofactor(sum).Equal(new(edwards25519.Point).MultByCofactor(q)) != 1 {
		t.Errorf("8·(map(0) + map(1)) != 8·map(1)")
	}
}
