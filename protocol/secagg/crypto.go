package secagg

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/secretsharing"
)

// Domain-separation labels. Every derivation also binds the session id.
const (
	labelAdvertise   = "xnode-v1:secagg:advertise"
	labelConsistency = "xnode-v1:secagg:consistency"
	labelShareKey    = "xnode-v1:secagg:share-enc"
	labelPairMask    = "xnode-v1:secagg:pair-mask"
	labelSelfMask    = "xnode-v1:secagg:self-mask"
	labelMaskKey     = "xnode-v1:secagg:mask-key"
	labelScalar      = "xnode-v1:secagg:scalar"
)

// shareGroup is the prime-order group whose scalar field Shamir sharing runs
// over. Its scalars are 32 bytes, canonical encodings only.
var shareGroup = group.Ristretto255

const (
	keySize    = x25519.Size // X25519 keys and all derived seeds
	scalarSize = 32
	// sealedSize is a pair's ciphertext: from, to (4 bytes each), the share
	// of s_sk and the share of b (a scalar each), and the GCM tag.
	sealedSize = 8 + 2*scalarSize + 16
)

// seed is a 32-byte secret: a PRG key or an X25519 private key.
type seed [keySize]byte

func (seed) String() string { return "secagg.seed(redacted)" }

// lp appends a 2-byte length prefix and b.
func lp(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// advertMsg is what a client signs in round 0.
func advertMsg(session []byte, id ClientID, cpk, spk []byte) []byte {
	m := lp([]byte(labelAdvertise), session)
	m = lp(m, []byte(id))
	m = append(m, cpk...)
	return append(m, spk...)
}

// consistencyMsg is what a client signs in round 3: the survivor set U3.
func consistencyMsg(session []byte, id ClientID, survivors []uint32) []byte {
	m := lp([]byte(labelConsistency), session)
	m = lp(m, []byte(id))
	m = binary.BigEndian.AppendUint32(m, uint32(len(survivors)))
	for _, s := range survivors {
		m = binary.BigEndian.AppendUint32(m, s)
	}
	return m
}

// kdf derives a 32-byte key with HKDF-SHA256, salted with the session.
func kdf(secret, session []byte, info string) (seed, error) {
	var out seed
	k, err := hkdf.Key(sha256.New, secret, session, info, keySize)
	if err != nil {
		return out, err
	}
	copy(out[:], k)
	return out, nil
}

func pairInfo(label string, a, b uint32) string {
	var buf [8]byte
	binary.BigEndian.PutUint32(buf[:4], a)
	binary.BigEndian.PutUint32(buf[4:], b)
	return label + ":" + string(buf[:])
}

// errLowOrder is returned for a public key of low order (a zero shared
// secret).
var errLowOrder = errors.New("low-order public key")

// agree computes X25519(sk, pk) and refuses a low-order pk.
func agree(sk *seed, pk []byte) (seed, error) {
	var shared, priv, pub x25519.Key
	copy(priv[:], sk[:])
	copy(pub[:], pk)
	ok := x25519.Shared(&shared, &priv, &pub)
	clear(priv[:])
	if !ok {
		return seed{}, errLowOrder
	}
	return seed(shared), nil
}

// publicKey returns the X25519 public key of sk.
func publicKey(sk *seed) []byte {
	var pub, priv x25519.Key
	copy(priv[:], sk[:])
	x25519.KeyGen(&pub, &priv)
	clear(priv[:])
	return pub[:]
}

// validPublicKey reports whether pk is 32 bytes, canonical (below 2^255−19)
// and not of low order.
func validPublicKey(pk []byte) bool {
	if len(pk) != keySize || pk[31]&0x80 != 0 {
		return false
	}
	// u ≥ p = 2^255−19 iff bytes 1..30 are 0xff, byte 31 is 0x7f and byte 0 ≥ 0xed.
	if pk[31] == 0x7f && pk[0] >= 0xed {
		high := true
		for _, b := range pk[1:31] {
			high = high && b == 0xff
		}
		if high {
			return false
		}
	}
	var probe seed
	probe[0] = 1 // any scalar: Shared reports low order whatever the scalar
	_, err := agree(&probe, pk)
	return err == nil
}

// pairSeed is s_uv = HKDF(X25519(s_sk_u, s_pk_v)), the same for u and v.
func pairSeed(sk *seed, pk, session []byte, u, v uint32) (seed, error) {
	shared, err := agree(sk, pk)
	if err != nil {
		return seed{}, err
	}
	defer clear(shared[:])
	return kdf(shared[:], session, pairInfo(labelPairMask, min(u, v), max(u, v)))
}

// shareAEAD returns the AEAD that carries u's shares to v: its key is
// HKDF(X25519(c_sk_u, c_pk_v)) with the direction in the info, so every key
// seals exactly one message and a zero nonce is safe.
func shareAEAD(sk *seed, pk, session []byte, from, to uint32) (cipher.AEAD, error) {
	shared, err := agree(sk, pk)
	if err != nil {
		return nil, err
	}
	defer clear(shared[:])
	key, err := kdf(shared[:], session, pairInfo(labelShareKey, from, to))
	if err != nil {
		return nil, err
	}
	defer clear(key[:])
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// randomScalar draws a uniform scalar from 64 bytes of r.
func randomScalar(r io.Reader, session []byte) (group.Scalar, error) {
	var buf [64]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return nil, fmt.Errorf("secagg: failed to read randomness: %w", err)
	}
	defer clear(buf[:])
	return shareGroup.HashToScalar(buf[:], lp([]byte(labelScalar), session)), nil
}

// scalarSeed derives a 32-byte seed from a shared scalar: the self-mask PRG
// key b (label labelSelfMask) or the mask private key s_sk (labelMaskKey).
func scalarSeed(s group.Scalar, session []byte, label string) (seed, error) {
	b, err := s.MarshalBinary()
	if err != nil {
		return seed{}, err
	}
	defer clear(b)
	return kdf(b, session, label)
}

// split makes t-of-n Shamir shares of secret, evaluated at 1..n (share i is
// for the client of roster index i-1).
func split(r io.Reader, t int, secret group.Scalar, n int) []secretsharing.Share {
	// circl's (t', n) scheme recovers from t'+1 shares.
	return secretsharing.New(r, uint(t-1), secret).Share(uint(n))
}

// recoverScalar reconstructs a secret from shares by roster index. Shares
// must hold at least t entries; only t are used.
func recoverScalar(t int, shares map[uint32][]byte) (group.Scalar, error) {
	if len(shares) < t {
		return nil, fmt.Errorf("%d shares, want %d", len(shares), t)
	}
	ss := make([]secretsharing.Share, 0, t)
	for idx, b := range shares {
		v := shareGroup.NewScalar()
		if err := v.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("share from client %d: %w", idx, err)
		}
		ss = append(ss, secretsharing.Share{ID: shareGroup.NewScalar().SetUint64(uint64(idx) + 1), Value: v})
		if len(ss) == t {
			break
		}
	}
	return secretsharing.Recover(uint(t-1), ss)
}

// prgBlock is the number of bytes of keystream made at a time.
const prgBlock = 32 << 10

// addPRG adds (sign = +1) or subtracts (sign = −1) PRG(key) to vec, element
// by element mod 2^64. PRG(key) is AES-256-CTR under the full 32-byte key
// with a zero IV, read as little-endian uint64s.
func addPRG(vec []uint64, key *seed, sign int, buf []byte) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key never fails
	}
	var iv [aes.BlockSize]byte
	ctr := cipher.NewCTR(block, iv[:])
	if len(buf) < prgBlock {
		buf = make([]byte, prgBlock)
	}
	buf = buf[:prgBlock]
	for off := 0; off < len(vec); off += prgBlock / 8 {
		part := vec[off:min(len(vec), off+prgBlock/8)]
		ks := buf[:8*len(part)]
		clear(ks)
		ctr.XORKeyStream(ks, ks)
		if sign > 0 {
			for i := range part {
				part[i] += binary.LittleEndian.Uint64(ks[8*i:])
			}
		} else {
			for i := range part {
				part[i] -= binary.LittleEndian.Uint64(ks[8*i:])
			}
		}
	}
	clear(buf)
}

// equalKeys compares two public keys in constant time.
func equalKeys(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
