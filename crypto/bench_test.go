package crypto_test

import (
	"crypto/rand"
	"testing"

	"xnode/crypto"
)

// The three benchmarks share one shape per suite so their ratios are
// meaningful: Floor is H(x) plus two scalar multiplications without any
// encoding; ECDH-PSI per item is one HashBlind plus one Blind.

func benchKey(b *testing.B, name string) (crypto.Suite, crypto.Key) {
	b.Helper()
	s, err := crypto.Lookup(name)
	if err != nil {
		b.Fatal(err)
	}
	k, err := s.NewKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return s, k
}

var benchMsg = []byte("cn_id:11010519491231002X")

func BenchmarkHashBlind(b *testing.B) {
	for _, n := range crypto.Names() {
		b.Run(n, func(b *testing.B) {
			s, k := benchKey(b, n)
			dst := crypto.DST("bench", n, nil)
			out := make([]byte, s.ElementSize())
			for b.Loop() {
				if err := k.HashBlind(out, benchMsg, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBlind(b *testing.B) {
	for _, n := range crypto.Names() {
		b.Run(n, func(b *testing.B) {
			s, k := benchKey(b, n)
			in := make([]byte, s.ElementSize())
			if err := k.HashBlind(in, benchMsg, crypto.DST("bench", n, nil)); err != nil {
				b.Fatal(err)
			}
			out := make([]byte, s.ElementSize())
			for b.Loop() {
				if err := k.Blind(out, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFloor(b *testing.B) {
	for _, n := range crypto.Names() {
		b.Run(n, func(b *testing.B) {
			_, k := benchKey(b, n)
			fk, ok := k.(crypto.FloorKey)
			if !ok {
				b.Skipf("%s keys do not implement FloorKey", n)
			}
			dst := crypto.DST("bench", n, nil)
			for b.Loop() {
				fk.Floor(benchMsg, dst)
			}
		})
	}
}

// BenchmarkHashToCurve is the suite's unkeyed RFC 9380 hash alone (for
// x25519-elligator2: expand_message_xmd, two Elligator 2 maps, the sum, the
// cofactor clearing and the u-coordinate).
func BenchmarkHashToCurve(b *testing.B) {
	for _, n := range crypto.Names() {
		b.Run(n, func(b *testing.B) {
			s, err := crypto.Lookup(n)
			if err != nil {
				b.Fatal(err)
			}
			dst := crypto.DST("bench", n, nil)
			out := make([]byte, s.ElementSize())
			for b.Loop() {
				if err := s.HashToElement(out, benchMsg, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
