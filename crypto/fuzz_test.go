package crypto_test

import (
	"bytes"
	"errors"
	"math/big"
	"testing"

	"xnode/crypto"
)

// FuzzValidate feeds arbitrary bytes to every suite's Validate: it must not
// panic, must refuse with ErrInvalidElement, and whatever it accepts must
// re-encode to itself (1·P through Blind) and blind without error.
func FuzzValidate(f *testing.F) {
	for _, n := range crypto.Names() {
		s, err := crypto.Lookup(n)
		if err != nil {
			f.Fatal(err)
		}
		h := make([]byte, s.ElementSize())
		if err := s.HashToElement(h, []byte("seed"), []byte("fuzz")); err != nil {
			f.Fatal(err)
		}
		f.Add(h)
		f.Add(make([]byte, s.ElementSize()))
		f.Add(bytes.Repeat([]byte{0xff}, s.ElementSize()))
	}
	f.Add([]byte{0x04})
	f.Add([]byte{})

	type pair struct{ one, other crypto.Key }
	keys := map[string]pair{}
	for _, n := range scalarSuites() {
		s, _ := crypto.Lookup(n)
		keys[n] = pair{keyWithScalar(f, s, big.NewInt(1)), keyWithScalar(f, s, big.NewInt(0x5eed))}
	}
	// No clamped X25519 scalar is 1, so that suite checks Validate against
	// Blind with an ordinary key and skips the re-encoding step.
	xs, _ := crypto.Lookup(crypto.X25519Elligator2)
	xk, err := xs.NewKey(bytes.NewReader(bytes.Repeat([]byte{0x5e}, 32)))
	if err != nil {
		f.Fatal(err)
	}
	keys[crypto.X25519Elligator2] = pair{nil, xk}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, n := range crypto.Names() {
			s, _ := crypto.Lookup(n)
			err := s.Validate(in)
			out := make([]byte, s.ElementSize())
			one := keys[n].one
			if one == nil {
				one = keys[n].other
			}
			berr := one.Blind(out, in)
			if (err == nil) != (berr == nil) {
				t.Fatalf("%s: Validate(%x) = %v but Blind = %v", n, in, err, berr)
			}
			if err != nil {
				if !errors.Is(err, crypto.ErrInvalidElement) {
					t.Fatalf("%s: Validate(%x) = %v, want ErrInvalidElement", n, in, err)
				}
				continue
			}
			if keys[n].one != nil && !bytes.Equal(out, in) {
				t.Fatalf("%s: valid %x re-encodes to %x", n, in, out)
			}
			if err := keys[n].other.Blind(out, in); err != nil {
				t.Fatalf("%s: Blind of valid %x: %v", n, in, err)
			}
			if err := s.Validate(out); err != nil {
				t.Fatalf("%s: Blind output %x does not validate: %v", n, out, err)
			}
		}
	})
}
