package crypto_test

import (
	"bytes"
	"crypto/elliptic"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"

	"xnode/crypto"
)

// ristrettoOrder is ℓ = 2^252 + 27742317777372353535851937790883648493 (RFC 9496 §4).
var ristrettoOrder, _ = new(big.Int).SetString("1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed", 16)

// order returns the prime order of a suite's group.
func order(t testing.TB, name string) *big.Int {
	t.Helper()
	switch name {
	case "ristretto255-sha512":
		return ristrettoOrder
	case "p256-sha256":
		return elliptic.P256().Params().N
	}
	t.Fatalf("no group order known for suite %q", name)
	return nil
}

func lookup(t testing.TB, name string) crypto.Suite {
	t.Helper()
	s, err := crypto.Lookup(name)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", name, err)
	}
	return s
}

// scalarSuites lists the suites whose NewKey draws a wide-reduced scalar
// modulo a prime group order, so that scalarReader and keyWithScalar apply.
// x25519-elligator2 keys are clamped 32-byte strings instead; its tests of
// the same properties are in x25519_test.go.
func scalarSuites() []string {
	return slices.DeleteFunc(crypto.Names(), func(n string) bool { return n == crypto.X25519Elligator2 })
}

// scalarReader yields bytes from which NewKey derives exactly the scalar k:
// NewKey reads ScalarLength+16 = 48 bytes and reduces them modulo the order,
// so k < order padded big-endian to 48 bytes gives k itself.
func scalarReader(k *big.Int) io.Reader {
	return bytes.NewReader(k.FillBytes(make([]byte, 48)))
}

// keyWithScalar returns the key of suite s whose secret scalar is k.
func keyWithScalar(t testing.TB, s crypto.Suite, k *big.Int) crypto.Key {
	t.Helper()
	key, err := s.NewKey(scalarReader(k))
	if err != nil {
		t.Fatalf("%s.NewKey(scalar %x): %v", s.Name(), k, err)
	}
	return key
}

// seededReader is a deterministic, non-cryptographic byte stream for tests.
type seededReader struct{ r *mrand.ChaCha8 }

func newSeededReader(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return seededReader{mrand.NewChaCha8(s)}
}

func (s seededReader) Read(p []byte) (int, error) { return s.r.Read(p) }

func newKey(t testing.TB, s crypto.Suite, r io.Reader) crypto.Key {
	t.Helper()
	k, err := s.NewKey(r)
	if err != nil {
		t.Fatalf("%s.NewKey: %v", s.Name(), err)
	}
	return k
}

func hashBlind(t testing.TB, k crypto.Key, msg, dst []byte) []byte {
	t.Helper()
	out := make([]byte, k.Suite().ElementSize())
	if err := k.HashBlind(out, msg, dst); err != nil {
		t.Fatalf("HashBlind(%q): %v", msg, err)
	}
	return out
}

func blind(t testing.TB, k crypto.Key, in []byte) []byte {
	t.Helper()
	out := make([]byte, k.Suite().ElementSize())
	if err := k.Blind(out, in); err != nil {
		t.Fatalf("Blind(%x): %v", in, err)
	}
	return out
}

func TestRegistry(t *testing.T) {
	names := crypto.Names()
	want := []string{"p256-sha256", "ristretto255-sha512", "x25519-elligator2"}
	if !slices.Equal(names, want) {
		t.Errorf("Names() = %v, want %v", names, want)
	}
	def, err := crypto.Lookup("")
	if err != nil || def.Name() != crypto.DefaultSuite {
		t.Errorf("Lookup(\"\") = %v, %v; want the default suite %q", def, err, crypto.DefaultSuite)
	}
	if _, err := crypto.Lookup("p384-sha384"); !errors.Is(err, crypto.ErrUnknownSuite) {
		t.Errorf("Lookup(unknown) error = %v, want ErrUnknownSuite", err)
	}
	sizes := map[string]int{"ristretto255-sha512": 32, "p256-sha256": 33, "x25519-elligator2": 32}
	for _, n := range names {
		if got := lookup(t, n).ElementSize(); got != sizes[n] {
			t.Errorf("%s.ElementSize() = %d, want %d", n, got, sizes[n])
		}
	}
}

func TestDST(t *testing.T) {
	long := strings.Repeat("p", 64)
	session := bytes.Repeat([]byte{0xab}, 64)
	for _, n := range crypto.Names() {
		if got := len(crypto.DST(long, n, session)); got > 255 {
			t.Errorf("len(DST(64-byte protocol, %s, 64-byte session)) = %d, want ≤ 255", n, got)
		}
	}
	a := crypto.DST("psi-ecdh", crypto.DefaultSuite, []byte{1})
	for _, b := range [][]byte{
		crypto.DST("psi-oprf", crypto.DefaultSuite, []byte{1}),
		crypto.DST("psi-ecdh", "p256-sha256", []byte{1}),
		crypto.DST("psi-ecdh", crypto.DefaultSuite, []byte{2}),
	} {
		if bytes.Equal(a, b) {
			t.Errorf("DST collision: %q", a)
		}
	}
}

func TestCount(t *testing.T) {
	tests := []struct {
		name    string
		n, size int
		want    int
		wantErr bool
	}{
		{"empty", 0, 32, 0, false},
		{"three", 96, 32, 3, false},
		{"ragged", 97, 32, 0, true},
		{"zero size", 32, 0, 0, true},
		{"negative size", 32, -1, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := crypto.Count(make([]byte, tt.n), tt.size)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("Count(%d bytes, %d) = %d, %v; want %d, error %v", tt.n, tt.size, got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, crypto.ErrInvalidElement) {
				t.Errorf("Count error %v does not wrap ErrInvalidElement", err)
			}
		})
	}
}

func TestCommutativity(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, n := range crypto.Names() {
		t.Run(n, func(t *testing.T) {
			s := lookup(t, n)
			dst := crypto.DST("test", n, []byte("commute"))
			for i := range 16 {
				a := newKey(t, s, newSeededReader(byte(2*i)))
				b := newKey(t, s, newSeededReader(byte(2*i+1)))
				msg := make([]byte, rng.IntN(64))
				for j := range msg {
					msg[j] = byte(rng.Uint32())
				}
				ab := blind(t, a, hashBlind(t, b, msg, dst))
				ba := blind(t, b, hashBlind(t, a, msg, dst))
				if !bytes.Equal(ab, ba) {
					t.Errorf("a·(b·H(%x)) = %x, b·(a·H(x)) = %x; want equal", msg, ab, ba)
				}
				if bytes.Equal(ab, hashBlind(t, a, msg, dst)) {
					t.Errorf("a·(b·H(x)) equals a·H(x) for %x", msg)
				}
			}
		})
	}
}

// invalidEncodings lists encodings that every Validate and Blind must refuse.
func invalidEncodings(t *testing.T, s crypto.Suite) map[string][]byte {
	t.Helper()
	valid := make([]byte, s.ElementSize())
	if err := s.HashToElement(valid, []byte("x"), []byte("dst")); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":     nil,
		"short":     valid[:len(valid)-1],
		"long":      append(slices.Clone(valid), 0),
		"all-zero":  make([]byte, s.ElementSize()),
		"all-ff":    bytes.Repeat([]byte{0xff}, s.ElementSize()),
		"twice":     append(slices.Clone(valid), valid...),
		"one byte0": {0},
	}
	switch s.Name() {
	case "ristretto255-sha512":
		// p = 2^255 - 19, little-endian.
		p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
		le := func(x *big.Int) []byte {
			b := x.FillBytes(make([]byte, 32))
			slices.Reverse(b)
			return b
		}
		cases["identity"] = make([]byte, 32)
		cases["field p (non-canonical zero)"] = le(p)
		cases["field p+1 (non-canonical one)"] = le(new(big.Int).Add(p, big.NewInt(1)))
		cases["negative field element 1"] = le(big.NewInt(1))
		neg := slices.Clone(valid)
		neg[0] |= 1 // a valid encoding is non-negative (even); make it odd
		cases["negative (odd) variant of a valid point"] = neg
		hi := slices.Clone(valid)
		hi[31] |= 0x80
		cases["top bit set"] = hi
	case crypto.X25519Elligator2:
		for name, b := range x25519Invalid(valid) {
			cases[name] = b
		}
	case "p256-sha256":
		curve := elliptic.P256()
		x, y, err := decompress(valid)
		if err != nil {
			t.Fatal(err)
		}
		cases["uncompressed 65-byte"] = append(append([]byte{0x04}, x.FillBytes(make([]byte, 32))...), y.FillBytes(make([]byte, 32))...)
		for _, prefix := range []byte{0x00, 0x01, 0x04, 0x05, 0xff} {
			b := slices.Clone(valid)
			b[0] = prefix
			cases[fmt.Sprintf("prefix %#02x", prefix)] = b
		}
		cases["identity 1-byte"] = []byte{0}
		cases["x not on curve"] = append([]byte{0x02}, onCurveX(t, false).FillBytes(make([]byte, 32))...)
		cases["x = p"] = append([]byte{0x02}, curve.Params().P.Bytes()...)
		onX := onCurveX(t, true)
		cases["x + p (non-canonical x of a curve point)"] = append([]byte{0x02}, new(big.Int).Add(onX, curve.Params().P).FillBytes(make([]byte, 32))...)
	}
	return cases
}

// decompress decodes a compressed P-256 point with an independent
// implementation (crypto/elliptic).
func decompress(b []byte) (x, y *big.Int, err error) {
	x, y = elliptic.UnmarshalCompressed(elliptic.P256(), b)
	if x == nil {
		return nil, nil, fmt.Errorf("not a compressed P-256 point: %x", b)
	}
	return x, y, nil
}

// onCurveX returns the smallest x ≥ 1 for which x³ − 3x + b is (on = true)
// or is not (on = false) a square mod p, i.e. the x of a P-256 point or an x
// that no point has.
func onCurveX(t *testing.T, on bool) *big.Int {
	t.Helper()
	params := elliptic.P256().Params()
	for i := int64(1); i < 100; i++ {
		x := big.NewInt(i)
		rhs := new(big.Int).Exp(x, big.NewInt(3), params.P)
		rhs.Sub(rhs, new(big.Int).Mul(big.NewInt(3), x))
		rhs.Add(rhs, params.B)
		rhs.Mod(rhs, params.P)
		if (new(big.Int).ModSqrt(rhs, params.P) != nil) == on {
			return x
		}
	}
	t.Fatalf("no x below 100 with on-curve = %v", on)
	return nil
}

func TestBlindRefusesInvalid(t *testing.T) {
	for _, n := range crypto.Names() {
		t.Run(n, func(t *testing.T) {
			s := lookup(t, n)
			key := newKey(t, s, newSeededReader(7))
			for name, in := range invalidEncodings(t, s) {
				if err := s.Validate(in); !errors.Is(err, crypto.ErrInvalidElement) {
					t.Errorf("Validate(%s %x) = %v, want ErrInvalidElement", name, in, err)
				}
				out := make([]byte, s.ElementSize())
				if err := key.Blind(out, in); !errors.Is(err, crypto.ErrInvalidElement) {
					t.Errorf("Blind(%s %x) = %v, want ErrInvalidElement", name, in, err)
				}
			}
		})
	}
}

func TestBlindRefusesRandomBytes(t *testing.T) {
	const trials = 2000
	// A uniform 32-byte string is a valid ristretto255 encoding with
	// probability about 1/16 (canonical, non-negative, square root exists,
	// non-negative t); a 33-byte string is a P-256 point only with a
	// 0x02/0x03 prefix, about 1/256.
	// A canonical u-coordinate outside the five low-order ones is accepted
	// (twist points included, see crypto.X25519Elligator2): about 1/2.
	limits := map[string]float64{"ristretto255-sha512": 0.15, "p256-sha256": 0.02, "x25519-elligator2": 0.55}
	rng := newSeededReader(99)
	for _, n := range crypto.Names() {
		t.Run(n, func(t *testing.T) {
			s := lookup(t, n)
			key := newKey(t, s, newSeededReader(8))
			valid := 0
			in := make([]byte, s.ElementSize())
			out := make([]byte, s.ElementSize())
			for range trials {
				io.ReadFull(rng, in)
				if key.Blind(out, in) == nil {
					valid++
				}
			}
			if frac := float64(valid) / trials; frac > limits[n] {
				t.Errorf("Blind accepted %d of %d random strings (%.3f), want at most %.3f", valid, trials, frac, limits[n])
			}
		})
	}
}

func TestBlindAliasing(t *testing.T) {
	for _, n := range crypto.Names() {
		t.Run(n, func(t *testing.T) {
			s := lookup(t, n)
			k := newKey(t, s, newSeededReader(3))
			p := hashBlind(t, k, []byte("alias"), []byte("dst"))
			want := blind(t, k, p)
			if err := k.Blind(p, p); err != nil {
				t.Fatalf("Blind(p, p): %v", err)
			}
			if !bytes.Equal(p, want) {
				t.Errorf("Blind in place = %x, want %x", p, want)
			}
			if err := k.Blind(make([]byte, s.ElementSize()-1), want); err == nil {
				t.Errorf("Blind into a short output succeeded, want an error")
			}
			if err := k.HashBlind(make([]byte, s.ElementSize()-1), []byte("m"), []byte("d")); err == nil {
				t.Errorf("HashBlind into a short output succeeded, want an error")
			}
		})
	}
}

func TestDomainSeparation(t *testing.T) {
	for _, n := range crypto.Names() {
		t.Run(n, func(t *testing.T) {
			s := lookup(t, n)
			k := newKey(t, s, newSeededReader(4))
			msg := []byte("cn_id:11010519491231002X")
			d1 := crypto.DST("psi-ecdh", n, []byte{1})
			d2 := crypto.DST("psi-ecdh", n, []byte{2})
			h1 := make([]byte, s.ElementSize())
			h2 := make([]byte, s.ElementSize())
			if err := s.HashToElement(h1, msg, d1); err != nil {
				t.Fatal(err)
			}
			if err := s.HashToElement(h2, msg, d2); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(h1, h2) {
				t.Errorf("HashToElement with DSTs %q and %q = %x for both", d1, d2, h1)
			}
			if bytes.Equal(hashBlind(t, k, msg, d1), hashBlind(t, k, msg, d2)) {
				t.Errorf("HashBlind with different DSTs gave equal outputs")
			}
			if err := s.Validate(h1); err != nil {
				t.Errorf("Validate(HashToElement(...)) = %v, want nil", err)
			}
			if n == crypto.X25519Elligator2 {
				return // no clamped scalar is 1; TestX25519MatchesCircl checks k·H(x) instead
			}
			if one := keyWithScalar(t, s, big.NewInt(1)); !bytes.Equal(hashBlind(t, one, msg, d1), h1) {
				t.Errorf("1·H(x) differs from H(x)")
			}
		})
	}
}

func TestKeyStringRedacted(t *testing.T) {
	for _, n := range scalarSuites() {
		t.Run(n, func(t *testing.T) {
			s := lookup(t, n)
			raw := make([]byte, 48)
			io.ReadFull(newSeededReader(5), raw)
			k := newKey(t, s, bytes.NewReader(raw))
			scalar := new(big.Int).Mod(new(big.Int).SetBytes(raw), order(t, n))
			be := scalar.FillBytes(make([]byte, 32))
			le := slices.Clone(be)
			slices.Reverse(le)
			secrets := []string{hex.EncodeToString(be), hex.EncodeToString(le), scalar.String(), hex.EncodeToString(raw[16:])}
			for _, format := range []string{"%v", "%+v", "%s", "%#v", "%x"} {
				got := fmt.Sprintf(format, k)
				for _, sec := range secrets {
					if strings.Contains(strings.ToLower(got), sec) {
						t.Errorf("Sprintf(%q, key) = %q contains the secret scalar", format, got)
					}
				}
			}
			if got := k.String(); !strings.Contains(got, "redacted") || !strings.Contains(got, n) {
				t.Errorf("String() = %q, want a redacted description naming %s", got, n)
			}
		})
	}
}

type failingReader struct{ after int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("entropy source broken")
	}
	n := min(len(p), f.after)
	f.after -= n
	return n, nil
}

func TestNewKeyReaderErrors(t *testing.T) {
	for _, n := range scalarSuites() {
		t.Run(n, func(t *testing.T) {
			s := lookup(t, n)
			for _, r := range []io.Reader{&failingReader{0}, &failingReader{10}, bytes.NewReader(make([]byte, 20))} {
				if k, err := s.NewKey(r); err == nil {
					t.Errorf("NewKey(%T failing) = %v, nil; want an error", r, k)
				}
			}
			if k, err := s.NewKey(nil); err == nil {
				t.Errorf("NewKey(nil) = %v, nil; want an error", k)
			}
			// An all-zero stream would give the zero scalar: NewKey must
			// draw again, and fail once the stream ends.
			zeros := bytes.NewReader(make([]byte, 48*3))
			if k, err := s.NewKey(zeros); err == nil {
				t.Errorf("NewKey(zeros) = %v, nil; want an error (zero scalar refused, then EOF)", k)
			}
			// A multiple of the order is zero too, then a good draw follows.
			ord := order(t, n)
			stream := append(ord.FillBytes(make([]byte, 48)), big.NewInt(5).FillBytes(make([]byte, 48))...)
			k, err := s.NewKey(bytes.NewReader(stream))
			if err != nil {
				t.Fatalf("NewKey(order, then 5): %v", err)
			}
			msg, dst := []byte("m"), []byte("d")
			if got, want := hashBlind(t, k, msg, dst), hashBlind(t, keyWithScalar(t, s, big.NewInt(5)), msg, dst); !bytes.Equal(got, want) {
				t.Errorf("NewKey(order, then 5) did not give the scalar 5")
			}
		})
	}
}

func TestNewKeyDeterministic(t *testing.T) {
	for _, n := range crypto.Names() {
		t.Run(n, func(t *testing.T) {
			s := lookup(t, n)
			msg, dst := []byte("cn_id:110105194912310025"), []byte("dst")
			a := hashBlind(t, newKey(t, s, newSeededReader(42)), msg, dst)
			b := hashBlind(t, newKey(t, s, newSeededReader(42)), msg, dst)
			c := hashBlind(t, newKey(t, s, newSeededReader(43)), msg, dst)
			if !bytes.Equal(a, b) {
				t.Errorf("keys from the same seed differ: %x vs %x", a, b)
			}
			if bytes.Equal(a, c) {
				t.Errorf("keys from different seeds agree: %x", a)
			}
		})
	}
}
