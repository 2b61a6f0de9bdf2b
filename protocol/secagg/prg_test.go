package secagg

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"testing"
)

// TestPRGIsAESCTR checks addPRG against AES-256-CTR from the standard
// library directly, across several internal blocks, for both signs.
func TestPRGIsAESCTR(t *testing.T) {
	var key seed
	for i := range key {
		key[i] = byte(i)
	}
	const n = prgBlock/8*2 + 3
	ks := make([]byte, 8*n)
	block, _ := aes.NewCipher(key[:])
	cipher.NewCTR(block, make([]byte, aes.BlockSize)).XORKeyStream(ks, ks)
	vec := make([]uint64, n)
	for i := range vec {
		vec[i] = uint64(i)
	}
	addPRG(vec, &key, +1, nil)
	for i := range vec {
		if want := uint64(i) + binary.LittleEndian.Uint64(ks[8*i:]); vec[i] != want {
			t.Fatalf("addPRG(+1)[%d] = %#x, want %#x", i, vec[i], want)
		}
	}
	addPRG(vec, &key, -1, make([]byte, prgBlock))
	for i := range vec {
		if vec[i] != uint64(i) {
			t.Fatalf("addPRG(-1) did not undo addPRG(+1) at %d", i)
		}
	}
}

// TestDerivationsSeparated: the same secret gives different seeds for
// different labels and sessions, and pair seeds agree between the two ends.
func TestDerivationsSeparated(t *testing.T) {
	sc, err := randomScalar(zeroReader{}, []byte("s1"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := scalarSeed(sc, []byte("s1"), labelSelfMask)
	b, _ := scalarSeed(sc, []byte("s1"), labelMaskKey)
	c, _ := scalarSeed(sc, []byte("s2"), labelSelfMask)
	if a == b || a == c {
		t.Error("seed derivation is not separated by label and session")
	}
	var sk1, sk2 seed
	sk1[0], sk2[0] = 1, 2
	p12, err := pairSeed(&sk1, publicKey(&sk2), []byte("s"), 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	p21, _ := pairSeed(&sk2, publicKey(&sk1), []byte("s"), 5, 3)
	if p12 != p21 {
		t.Error("pair seeds differ between the two ends")
	}
	if validPublicKey(make([]byte, 32)) || !validPublicKey(publicKey(&sk1)) {
		t.Error("validPublicKey misjudges u = 0 or a real key")
	}
	if s := a.String(); s != "secagg.seed(redacted)" {
		t.Errorf("seed prints as %q", s)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// BenchmarkPRG is the floor under BenchmarkAggregate: one 100,000-element
// mask expansion. A 10-client session with no dropout does 10·10 of them on
// the clients and 10 on the server.
func BenchmarkPRG(b *testing.B) {
	var key seed
	vec := make([]uint64, 100_000)
	buf := make([]byte, prgBlock)
	b.SetBytes(8 * int64(len(vec)))
	for b.Loop() {
		addPRG(vec, &key, +1, buf)
	}
}
