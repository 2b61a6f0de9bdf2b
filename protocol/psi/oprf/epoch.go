package oprf

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/cloudflare/circl/oprf"

	"xnode/protocol/internal/par"
)

// Params fix the membership form's Golomb-coded set for a whole epoch, so
// that deltas and full rebuilds agree bit for bit.
type Params struct {
	// FPRBits is log2(1/ε) for the per-lookup false-positive rate ε at the
	// expected size.
	FPRBits int
	// Buckets is the number of Golomb-coded buckets.
	Buckets uint32
}

// width is the range W = 2^(FPRBits+BucketBits) of values within a bucket.
func (p Params) width() uint64 { return 1 << (p.FPRBits + BucketBits) }

func (p Params) valid() bool {
	return p.FPRBits >= MinFPRBits && p.FPRBits <= MaxFPRBits && p.Buckets >= 1 && p.Buckets <= 1<<31
}

// EpochConfig chooses an epoch's parameters.
type EpochConfig struct {
	// ExpectedItems sizes the membership form: its false-positive rate is
	// 2^-FPRBits at this many items and grows in proportion beyond it
	// (rotate the epoch when the list has grown well past it). At least 1.
	ExpectedItems int
	// FPRBits (default DefaultFPRBits).
	FPRBits int
}

// Epoch is a responder's VOPRF key for one key epoch. It is a secret: the
// node stores it (MarshalBinary) in its store and never logs it.
type Epoch struct {
	id     uint64
	params Params
	sk     [ScalarSize]byte
	key    *oprf.PrivateKey
	com    Commitment
}

// NewEpoch draws a fresh VOPRF key (RFC 9497 ristretto255-SHA512) from rand
// (crypto/rand in production).
func NewEpoch(rand io.Reader, id uint64, cfg EpochConfig) (*Epoch, error) {
	key, err := oprf.GenerateKey(suite, rand)
	if err != nil {
		return nil, fmt.Errorf("failed to generate an OPRF key: %w", err)
	}
	sk, err := key.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return newEpoch(id, cfg, sk)
}

// NewEpochFromKey makes an epoch from an encoded private key (known-answer
// tests, or a key derived with RFC 9497 DeriveKeyPair).
func NewEpochFromKey(id uint64, cfg EpochConfig, privateKey []byte) (*Epoch, error) {
	return newEpoch(id, cfg, privateKey)
}

func newEpoch(id uint64, cfg EpochConfig, sk []byte) (*Epoch, error) {
	if id == 0 {
		return nil, errors.New("psi-oprf: epoch id 0 is reserved for 'none'")
	}
	if cfg.FPRBits == 0 {
		cfg.FPRBits = DefaultFPRBits
	}
	if cfg.ExpectedItems < 1 {
		return nil, fmt.Errorf("psi-oprf: expected items %d, want at least 1", cfg.ExpectedItems)
	}
	p := Params{FPRBits: cfg.FPRBits, Buckets: uint32(min((cfg.ExpectedItems+(1<<BucketBits)-1)>>BucketBits, 1<<31))}
	if !p.valid() {
		return nil, fmt.Errorf("psi-oprf: false-positive bits %d, want %d to %d", cfg.FPRBits, MinFPRBits, MaxFPRBits)
	}
	return epochFrom(id, p, sk)
}

func epochFrom(id uint64, p Params, sk []byte) (*Epoch, error) {
	key := new(oprf.PrivateKey)
	if len(sk) != ScalarSize {
		return nil, fmt.Errorf("%w: private key of %d bytes", ErrMalformed, len(sk))
	}
	if err := key.UnmarshalBinary(suite, sk); err != nil {
		return nil, fmt.Errorf("%w: private key: %v", ErrMalformed, err)
	}
	pk, err := key.Public().MarshalBinary()
	if err != nil {
		return nil, err
	}
	e := &Epoch{id: id, params: p, key: key}
	copy(e.sk[:], sk)
	e.com.Epoch = id
	copy(e.com.PublicKey[:], pk)
	return e, nil
}

// ID is the epoch id.
func (e *Epoch) ID() uint64 { return e.id }

// Params are the epoch's membership-form parameters.
func (e *Epoch) Params() Params { return e.params }

// Commitment is the epoch's public commitment.
func (e *Epoch) Commitment() Commitment { return e.com }

// String never prints the key.
func (e *Epoch) String() string {
	return fmt.Sprintf("psi-oprf-epoch(id=%d, key=<secret>)", e.id)
}

const epochMagic = "XPOK"

// MarshalBinary encodes the epoch, private key included, for the node's store.
func (e *Epoch) MarshalBinary() ([]byte, error) {
	b := append([]byte(epochMagic), 1)
	b = putU64(b, e.id)
	b = append(b, byte(e.params.FPRBits))
	b = binary.BigEndian.AppendUint32(b, e.params.Buckets)
	return append(b, e.sk[:]...), nil
}

// UnmarshalEpoch decodes what Epoch.MarshalBinary encoded.
func UnmarshalEpoch(b []byte) (*Epoch, error) {
	if len(b) != 4+1+8+1+4+ScalarSize || string(b[:4]) != epochMagic || b[4] != 1 {
		return nil, fmt.Errorf("%w: not an epoch key", ErrMalformed)
	}
	id := binary.BigEndian.Uint64(b[5:])
	p := Params{FPRBits: int(b[13]), Buckets: binary.BigEndian.Uint32(b[14:])}
	if id == 0 || !p.valid() {
		return nil, fmt.Errorf("%w: epoch parameters", ErrMalformed)
	}
	return epochFrom(id, p, b[18:])
}

// evaluate computes the OPRF output of every key, fanning out over the cores.
func (e *Epoch) evaluate(keys [][]byte) ([][]byte, error) {
	srv := oprf.NewVerifiableServer(suite, e.key)
	outs := make([][]byte, len(keys))
	err := par.For(par.Workers(0), len(keys), 64, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			o, err := srv.FullEvaluate(keys[i])
			if err != nil {
				return fmt.Errorf("failed to evaluate item %d: %w", i, err)
			}
			outs[i] = o
		}
		return nil
	})
	return outs, err
}

// Encode evaluates every item with the epoch's key and builds the labeled
// encoding, version 1. Item keys must be distinct.
func (e *Epoch) Encode(items []Item) (*Encoding, error) {
	ents, err := e.entries(items)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ents, func(a, b entry) int { return bytes.Compare(a.tag[:], b.tag[:]) })
	for i := 1; i < len(ents); i++ {
		if ents[i].tag == ents[i-1].tag {
			return nil, fmt.Errorf("%w: two items evaluate to the same tag", ErrDuplicate)
		}
	}
	return &Encoding{com: e.com, params: e.params, version: 1, ents: ents}, nil
}

func (e *Epoch) entries(items []Item) ([]entry, error) {
	keys := make([][]byte, len(items))
	for i, it := range items {
		if len(it.Labels) > MaxLabelSize {
			return nil, fmt.Errorf("psi-oprf: item %d has %d bytes of labels, more than %d", i, len(it.Labels), MaxLabelSize)
		}
		keys[i] = it.Key
	}
	outs, err := e.evaluate(keys)
	if err != nil {
		return nil, err
	}
	ents := make([]entry, len(items))
	err = par.For(par.Workers(0), len(items), 256, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			d := derive(e.id, outs[i])
			ents[i].tag = d.tag
			ents[i].sealed = d.seal(e.id, items[i].Labels)
		}
		return nil
	})
	return ents, err
}

// Changes are edits to a responder's list.
type Changes struct {
	// Put adds items, or replaces the labels of items already present.
	Put []Item
	// Remove removes items by key; each must be present.
	Remove [][]byte
}

// Update applies changes to enc (which must be this epoch's) and returns the
// next version of the encoding and the delta that takes enc to it. enc is
// not modified.
func (e *Epoch) Update(enc *Encoding, ch Changes) (*Encoding, *Delta, error) {
	if enc.com != e.com {
		return nil, nil, fmt.Errorf("%w: encoding of %v, epoch is %v", ErrStale, enc.com, e.com)
	}
	put, err := e.entries(ch.Put)
	if err != nil {
		return nil, nil, err
	}
	rmOut, err := e.evaluate(ch.Remove)
	if err != nil {
		return nil, nil, err
	}
	d := &Delta{com: e.com, from: enc.version, to: enc.version + 1, form: Labeled}
	removed := make(map[[TagSize]byte]bool, len(rmOut))
	for _, o := range rmOut {
		t := deriveTag(e.id, o)
		if removed[t] {
			return nil, nil, fmt.Errorf("%w: an item is removed twice", ErrDuplicate)
		}
		removed[t] = true
		if _, ok := enc.find(t); !ok {
			return nil, nil, errors.New("psi-oprf: a removed item is not in the encoding")
		}
		d.removed = append(d.removed, t)
	}
	putSeen := make(map[[TagSize]byte]bool, len(put))
	for _, p := range put {
		if removed[p.tag] {
			return nil, nil, errors.New("psi-oprf: an item is both put and removed")
		}
		if putSeen[p.tag] {
			return nil, nil, fmt.Errorf("%w: an item is put twice", ErrDuplicate)
		}
		putSeen[p.tag] = true
		if i, ok := enc.find(p.tag); ok {
			if bytes.Equal(enc.ents[i].sealed, p.sealed) {
				continue // unchanged
			}
			d.removed = append(d.removed, p.tag)
		}
		d.added = append(d.added, p)
	}
	d.sort()
	next, err := enc.Apply(d)
	if err != nil {
		return nil, nil, err
	}
	return next.(*Encoding), d, nil
}

// derived is what an OPRF output yields.
type derived struct {
	tag      [TagSize]byte
	key      [32]byte // AES-256-GCM key of the labels
	nonceKey [32]byte // HMAC key of the synthetic nonce
}

// derive: PRK = HKDF-Extract(SHA-512, salt = "xnode-v1:psi-oprf:" ‖ suite ‖
// epoch, IKM = output); tag, label key and nonce key are HKDF-Expand of PRK
// with the infos "tag", "label-key" and "label-nonce".
func derive(epoch uint64, out []byte) derived {
	var d derived
	prk, err := hkdf.Extract(sha512.New, out, salt(epoch))
	if err != nil {
		panic(err) // cannot happen: SHA-512 HKDF with a 64-byte output
	}
	tag, _ := hkdf.Expand(sha512.New, prk, "tag", TagSize)
	key, _ := hkdf.Expand(sha512.New, prk, "label-key", 32)
	nk, _ := hkdf.Expand(sha512.New, prk, "label-nonce", 32)
	copy(d.tag[:], tag)
	copy(d.key[:], key)
	copy(d.nonceKey[:], nk)
	return d
}

// deriveTag is derive without the keys, for lookups.
func deriveTag(epoch uint64, out []byte) [TagSize]byte {
	var t [TagSize]byte
	prk, err := hkdf.Extract(sha512.New, out, salt(epoch))
	if err != nil {
		panic(err)
	}
	tag, _ := hkdf.Expand(sha512.New, prk, "tag", TagSize)
	copy(t[:], tag)
	return t
}

func salt(epoch uint64) []byte {
	return putU64([]byte("xnode-v1:psi-oprf:"+SuiteName+":"), epoch)
}

const nonceSize = 12

// sealOverhead is the bytes sealing adds to labels: nonce and GCM tag.
const sealOverhead = nonceSize + 16

func labelAD(epoch uint64, tag [TagSize]byte) []byte {
	return append(putU64([]byte("xnode-v1:psi-oprf:labels:"), epoch), tag[:]...)
}

// seal encrypts labels with AES-256-GCM under d.key. The nonce is synthetic
// (HMAC-SHA-256 of the associated data and labels under d.nonceKey, as in
// SIV): the same labels give the same ciphertext, and different labels of
// one item never share a nonce, so a rebuilt encoding equals a patched one.
func (d *derived) seal(epoch uint64, labels []byte) []byte {
	ad := labelAD(epoch, d.tag)
	mac := hmac.New(sha256.New, d.nonceKey[:])
	mac.Write(ad)
	mac.Write(labels)
	nonce := mac.Sum(nil)[:nonceSize]
	out := make([]byte, nonceSize, nonceSize+len(labels)+16)
	copy(out, nonce)
	return aead(d.key[:]).Seal(out, nonce, labels, ad)
}

// open decrypts a sealed entry with the label key of an output.
func open(epoch uint64, out []byte, tag [TagSize]byte, sealed []byte) ([]byte, error) {
	if len(sealed) < sealOverhead {
		return nil, errors.New("sealed labels too short")
	}
	d := derive(epoch, out)
	return aead(d.key[:]).Open(nil, sealed[:nonceSize], sealed[nonceSize:], labelAD(epoch, tag))
}

func aead(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

// fpr is the per-lookup false-positive bound n / (Buckets·W).
func (p Params) fpr(n int) float64 {
	return float64(n) / (float64(p.Buckets) * math.Ldexp(1, p.FPRBits+BucketBits))
}
