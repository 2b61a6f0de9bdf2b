package crypto

import (
	gocrypto "crypto"
	"math/big"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
	"github.com/cloudflare/circl/expander"
)

// This file implements the RFC 9380 hash to Curve25519 used by the
// x25519-elligator2 suite:
//
//	curve25519_XMD:SHA-512_ELL2_RO_ (RFC 9380 §8.5)
//	  expand_message_xmd(SHA-512)      §5.3.1, circl expander
//	  hash_to_field, m = 1, L = 48      §5.2, reduced mod p by filippo field
//	  map_to_curve_elligator2_curve25519  Appendix G.2.1 (straight-line)
//	  point addition and clear_cofactor (h = 8) on edwards25519, through the
//	  birational map of Appendix G.2.2 / §6.8.2
//
// The sum and the cofactor clearing run on edwards25519 (filippo.io's complete
// twisted-Edwards formulas, so no exceptional case needs care) and the result
// is returned as the Montgomery u-coordinate, u = (1 + y) / (1 − y). Because
// the rational map is a group isomorphism that sends the neutral element to
// the neutral element, 8·(φ(Q0) + φ(Q1)) = φ(8·(Q0 + Q1)), so the u-coordinate
// is exactly that of the curve25519_XMD:SHA-512_ELL2_RO_ output; the RFC 9380
// J.4.1 vectors check it. The whole hash costs two exponentiations (one per
// map, Pow22523) and one inversion (BytesMontgomery): the maps return
// fractions and the Edwards arithmetic is projective.
//
// No field arithmetic is written here: every operation is a method of
// filippo.io/edwards25519/field.Element.

// Constants of Appendix G.2.1 and G.2.2, computed once from their definitions.
var (
	ell2J  = feFromBig(big.NewInt(486662))     // J, the Montgomery A coefficient
	ell2C2 = feFromBig(pow2mod(p25519Plus3_8)) // 2^((p+3)/8)
	ell2C3 = feFromBig(sqrtMinusOne())         // sqrt(-1)
	ell2C1 = feFromBig(sqrtMinus486664())      // sqrt(-486664) with sgn0 = 0, G.2.2
	feOne  = new(field.Element).One()
)

var (
	p25519        = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	p25519Plus3_8 = new(big.Int).Rsh(new(big.Int).Add(p25519, big.NewInt(3)), 3)
)

func pow2mod(e *big.Int) *big.Int { return new(big.Int).Exp(big.NewInt(2), e, p25519) }

// sqrtMinusOne is 2^((p−1)/4), a square root of −1 mod p.
func sqrtMinusOne() *big.Int {
	e := new(big.Int).Rsh(new(big.Int).Sub(p25519, big.NewInt(1)), 2)
	return pow2mod(e)
}

// sqrtMinus486664 is the square root of −486664 mod p whose sgn0 is 0 (even).
func sqrtMinus486664() *big.Int {
	r := new(big.Int).ModSqrt(new(big.Int).Sub(p25519, big.NewInt(486664)), p25519)
	if r == nil {
		panic("crypto: -486664 is not a square mod p")
	}
	if r.Bit(0) == 1 {
		r.Sub(p25519, r)
	}
	return r
}

// feFromBig loads 0 ≤ x < p into a field element.
func feFromBig(x *big.Int) *field.Element {
	b := x.FillBytes(make([]byte, 32))
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	fe, err := new(field.Element).SetBytes(b)
	if err != nil {
		panic(err)
	}
	return fe
}

// h2cL is L of RFC 9380 §5: ceil((ceil(log2(p)) + k) / 8) = ceil((255+128)/8).
const h2cL = 48

// hashToField25519 is hash_to_field(msg, 2) with expand_message_xmd(SHA-512):
// two elements of GF(2^255−19), each the big-endian integer of 48 uniform
// bytes reduced mod p.
func hashToField25519(msg, dst []byte) (u0, u1 field.Element) {
	uniform := expander.NewExpanderMD(gocrypto.SHA512, dst).Expand(msg, 2*h2cL)
	setBigEndianWide(&u0, uniform[:h2cL])
	setBigEndianWide(&u1, uniform[h2cL:])
	return u0, u1
}

// setBigEndianWide sets fe to the big-endian integer b (48 bytes) mod p, by
// way of filippo's 64-byte little-endian wide reduction.
func setBigEndianWide(fe *field.Element, b []byte) {
	var wide [64]byte
	for i := range b {
		wide[i] = b[len(b)-1-i]
	}
	if _, err := fe.SetWideBytes(wide[:]); err != nil {
		panic(err) // the length is fixed at 64
	}
}

// ell2Curve25519 is map_to_curve_elligator2_curve25519 of RFC 9380 Appendix
// G.2.1, step by step. It returns (xn, xd, y) with the point (xn/xd, y) on
// curve25519 (yd = 1); xd is never zero.
func ell2Curve25519(u *field.Element) (xn, xd, y field.Element) {
	var tv1, tv2, tv3, x1n, gxd, gx1, y11, y12, y1, x2n, y21, y22, gx2, y2, negY field.Element
	tv1.Square(u)              //  1. tv1 = u^2
	tv1.Add(&tv1, &tv1)        //  2. tv1 = 2 * tv1
	xd.Add(&tv1, feOne)        //  3.  xd = tv1 + 1
	x1n.Negate(ell2J)          //  4. x1n = -J
	tv2.Square(&xd)            //  5. tv2 = xd^2
	gxd.Multiply(&tv2, &xd)    //  6. gxd = tv2 * xd
	gx1.Multiply(ell2J, &tv1)  //  7. gx1 = J * tv1
	gx1.Multiply(&gx1, &x1n)   //  8. gx1 = gx1 * x1n
	gx1.Add(&gx1, &tv2)        //  9. gx1 = gx1 + tv2
	gx1.Multiply(&gx1, &x1n)   // 10. gx1 = gx1 * x1n
	tv3.Square(&gxd)           // 11. tv3 = gxd^2
	tv2.Square(&tv3)           // 12. tv2 = tv3^2
	tv3.Multiply(&tv3, &gxd)   // 13. tv3 = tv3 * gxd
	tv3.Multiply(&tv3, &gx1)   // 14. tv3 = tv3 * gx1
	tv2.Multiply(&tv2, &tv3)   // 15. tv2 = tv2 * tv3
	y11.Pow22523(&tv2)         // 16. y11 = tv2^c4, c4 = (p-5)/8
	y11.Multiply(&y11, &tv3)   // 17. y11 = y11 * tv3
	y12.Multiply(&y11, ell2C3) // 18. y12 = y11 * c3
	tv2.Square(&y11)           // 19. tv2 = y11^2
	tv2.Multiply(&tv2, &gxd)   // 20. tv2 = tv2 * gxd
	e1 := tv2.Equal(&gx1)      // 21.  e1 = tv2 == gx1
	y1.Select(&y11, &y12, e1)  // 22.  y1 = CMOV(y12, y11, e1)
	x2n.Multiply(&x1n, &tv1)   // 23. x2n = x1n * tv1
	y21.Multiply(&y11, u)      // 24. y21 = y11 * u
	y21.Multiply(&y21, ell2C2) // 25. y21 = y21 * c2
	y22.Multiply(&y21, ell2C3) // 26. y22 = y21 * c3
	gx2.Multiply(&gx1, &tv1)   // 27. gx2 = gx1 * tv1
	tv2.Square(&y21)           // 28. tv2 = y21^2
	tv2.Multiply(&tv2, &gxd)   // 29. tv2 = tv2 * gxd
	e2 := tv2.Equal(&gx2)      // 30.  e2 = tv2 == gx2
	y2.Select(&y21, &y22, e2)  // 31.  y2 = CMOV(y22, y21, e2)
	tv2.Square(&y1)            // 32. tv2 = y1^2
	tv2.Multiply(&tv2, &gxd)   // 33. tv2 = tv2 * gxd
	e3 := tv2.Equal(&gx1)      // 34.  e3 = tv2 == gx1
	xn.Select(&x1n, &x2n, e3)  // 35.  xn = CMOV(x2n, x1n, e3)
	y.Select(&y1, &y2, e3)     // 36.   y = CMOV(y2, y1, e3)
	e4 := y.IsNegative()       // 37.  e4 = sgn0(y) == 1
	negY.Negate(&y)            //
	y.Select(&negY, &y, e3^e4) // 38.   y = CMOV(y, -y, e3 XOR e4)
	return xn, xd, y           // 39. return (xn, xd, y, 1)
}

// ell2Edwards25519 is map_to_curve_elligator2_edwards25519 of RFC 9380
// Appendix G.2.2: the curve25519 map followed by the rational map
// (x, y) = (sqrt(−486664)·u/v, (u−1)/(u+1)), as an extended-coordinates
// edwards25519 point. The map's exceptional inputs (v = 0 or u = −1) go to
// the identity as G.2.2 specifies.
func ell2Edwards25519(u *field.Element) *edwards25519.Point {
	xMn, xMd, yMn := ell2Curve25519(u) // yMd = 1
	var xn, xd, yn, yd, tv1 field.Element
	xn.Multiply(&xMn, ell2C1) // 2-3. xn = xMn * yMd * c1
	xd.Multiply(&xMd, &yMn)   //   4. xd = xMd * yMn
	yn.Subtract(&xMn, &xMd)   //   5. yn = xMn - xMd
	yd.Add(&xMn, &xMd)        //   6. yd = xMn + xMd
	tv1.Multiply(&xd, &yd)    //   7. tv1 = xd * yd
	e := tv1.Equal(new(field.Element))
	xn.Select(new(field.Element), &xn, e) //  9. xn = CMOV(xn, 0, e)
	xd.Select(feOne, &xd, e)              // 10. xd = CMOV(xd, 1, e)
	yn.Select(feOne, &yn, e)              // 11. yn = CMOV(yn, 1, e)
	yd.Select(feOne, &yd, e)              // 12. yd = CMOV(yd, 1, e)

	// (xn/xd, yn/yd) in extended coordinates: X = xn·yd, Y = yn·xd,
	// Z = xd·yd, T = xn·yn (so that X·Y = Z·T).
	var X, Y, Z, T field.Element
	X.Multiply(&xn, &yd)
	Y.Multiply(&yn, &xd)
	Z.Multiply(&xd, &yd)
	T.Multiply(&xn, &yn)
	p, err := new(edwards25519.Point).SetExtendedCoordinates(&X, &Y, &Z, &T)
	if err != nil {
		// Elligator 2 always lands on the curve; reaching this is a bug.
		panic("crypto: Elligator 2 output is not on edwards25519: " + err.Error())
	}
	return p
}

// hashToEdwards25519 is hash_to_curve for edwards25519_XMD:SHA-512_ELL2_RO_
// (RFC 9380 §8.5): two maps, their sum, and clear_cofactor (×8).
func hashToEdwards25519(msg, dst []byte) *edwards25519.Point {
	u0, u1 := hashToField25519(msg, dst)
	p := ell2Edwards25519(&u0)
	p.Add(p, ell2Edwards25519(&u1))
	return p.MultByCofactor(p)
}

// hashToCurve25519 writes the little-endian Montgomery u-coordinate of the
// curve25519_XMD:SHA-512_ELL2_RO_ hash of msg to out. It returns false (and
// u = 0) in the negligible case that the hash is the neutral element.
func hashToCurve25519(out *[32]byte, msg, dst []byte) bool {
	p := hashToEdwards25519(msg, dst)
	copy(out[:], p.BytesMontgomery())
	return p.Equal(edwards25519.NewIdentityPoint()) != 1
}
