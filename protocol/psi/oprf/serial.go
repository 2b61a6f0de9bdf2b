package oprf

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cloudflare/circl/oprf"
)

// Serialised form of encodings and deltas: a header chunk, then body chunks
// of whole records, each chunk at most the chosen size (≤
// protocol.MaxMessageSize). The node stores the chunks as they are and the
// responder streams them.
//
//	header: "XPOS" | u8 format (1) | u8 kind | u64 epoch | [32] public key |
//	        u8 FPRBits | u32 Buckets | u64 from | u64 version | u64 n1 | u64 n2
//	body:   "XPOB" | u32 seq (from 0) | records…
//
// Kinds and records (all integers big-endian, lengths uvarint):
//
//	1 labeled encoding:   n1 × (tag[16] | len | sealed)       tags strictly ascending
//	2 membership set:     Buckets × (len | bucket)             n1 = items in all buckets
//	3 labeled delta:      n1 added (tag | len | sealed), then n2 removed (tag)
//	4 membership delta:   n1 added (tag), then n2 removed (tag)
//
// Encodings have from = 0; a delta goes from version `from` to `version` =
// from+1. Added and removed tags of a delta are each strictly ascending.
const (
	headerMagic = "XPOS"
	bodyMagic   = "XPOB"
	formatV1    = 1
	headerSize  = 4 + 1 + 1 + 8 + ElementSize + 1 + 4 + 8 + 8 + 8 + 8
	bodyHdrSize = 4 + 4

	kindLabeled        = 1
	kindMembership     = 2
	kindDeltaLabeled   = 3
	kindDeltaMembershp = 4
)

type header struct {
	kind     byte
	com      Commitment
	params   Params
	from, to uint64
	n1, n2   uint64
}

func (h header) marshal() []byte {
	b := make([]byte, 0, headerSize)
	b = append(b, headerMagic...)
	b = append(b, formatV1, h.kind)
	b = putU64(b, h.com.Epoch)
	b = append(b, h.com.PublicKey[:]...)
	b = append(b, byte(h.params.FPRBits))
	b = binary.BigEndian.AppendUint32(b, h.params.Buckets)
	b = putU64(b, h.from)
	b = putU64(b, h.to)
	b = putU64(b, h.n1)
	return putU64(b, h.n2)
}

func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) != headerSize || string(b[:4]) != headerMagic || b[4] != formatV1 {
		return h, fmt.Errorf("%w: not a psi-oprf header chunk", ErrMalformed)
	}
	h.kind = b[5]
	h.com.Epoch = binary.BigEndian.Uint64(b[6:])
	copy(h.com.PublicKey[:], b[14:46])
	h.params = Params{FPRBits: int(b[46]), Buckets: binary.BigEndian.Uint32(b[47:])}
	h.from = binary.BigEndian.Uint64(b[51:])
	h.to = binary.BigEndian.Uint64(b[59:])
	h.n1 = binary.BigEndian.Uint64(b[67:])
	h.n2 = binary.BigEndian.Uint64(b[75:])
	if h.kind < kindLabeled || h.kind > kindDeltaMembershp || h.com.Epoch == 0 || !h.params.valid() || h.to == 0 {
		return h, fmt.Errorf("%w: header fields out of range", ErrMalformed)
	}
	if err := checkPublicKey(h.com.PublicKey[:]); err != nil {
		return h, err
	}
	isDelta := h.kind >= kindDeltaLabeled
	if isDelta != (h.from != 0) || (isDelta && h.to != h.from+1) || (!isDelta && h.n2 != 0) {
		return h, fmt.Errorf("%w: header versions", ErrMalformed)
	}
	return h, nil
}

// checkPublicKey accepts a canonical, non-identity ristretto255 element.
func checkPublicKey(b []byte) error {
	var pk oprf.PublicKey
	if err := pk.UnmarshalBinary(suite, b); err != nil {
		return fmt.Errorf("%w: public key: %v", ErrMalformed, err)
	}
	return nil
}

// chunker cuts a header and records into chunks lazily.
type chunker struct {
	max    int
	header []byte
	nrec   int
	rec    func(i int, dst []byte) []byte
	i, seq int
	sent   bool
}

func newChunker(max int, h header, nrec int, rec func(int, []byte) []byte) (*chunker, error) {
	if max < MinChunkSize {
		return nil, fmt.Errorf("psi-oprf: chunk size %d, want at least %d", max, MinChunkSize)
	}
	return &chunker{max: max, header: h.marshal(), nrec: nrec, rec: rec}, nil
}

// next returns the next chunk, or nil at the end.
func (c *chunker) next() ([]byte, error) {
	if !c.sent {
		c.sent = true
		return c.header, nil
	}
	if c.i >= c.nrec {
		return nil, nil
	}
	b := append([]byte(bodyMagic), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[4:], uint32(c.seq))
	c.seq++
	for c.i < c.nrec {
		n := len(b)
		b = c.rec(c.i, b)
		if len(b) > c.max {
			if n == bodyHdrSize {
				return nil, fmt.Errorf("psi-oprf: record %d of %d bytes exceeds the chunk size %d", c.i, len(b)-n, c.max)
			}
			b = b[:n]
			break
		}
		c.i++
	}
	return b, nil
}

func (c *chunker) all() ([][]byte, error) {
	var out [][]byte
	for {
		b, err := c.next()
		if err != nil {
			return nil, err
		}
		if b == nil {
			return out, nil
		}
		out = append(out, b)
	}
}

func appendEntry(dst []byte, e *entry, labeled bool) []byte {
	dst = append(dst, e.tag[:]...)
	if labeled {
		dst = binary.AppendUvarint(dst, uint64(len(e.sealed)))
		dst = append(dst, e.sealed...)
	}
	return dst
}

func (e *Encoding) serializer(max int) (*chunker, error) {
	h := header{kind: kindLabeled, com: e.com, params: e.params, to: e.version, n1: uint64(len(e.ents))}
	return newChunker(max, h, len(e.ents), func(i int, dst []byte) []byte { return appendEntry(dst, &e.ents[i], true) })
}

// Chunks implements Set.
func (e *Encoding) Chunks(max int) ([][]byte, error) {
	c, err := e.serializer(max)
	if err != nil {
		return nil, err
	}
	return c.all()
}

func (m *MembershipSet) serializer(max int) (*chunker, error) {
	h := header{kind: kindMembership, com: m.com, params: m.params, to: m.version, n1: uint64(m.n)}
	return newChunker(max, h, len(m.buckets), func(i int, dst []byte) []byte {
		dst = binary.AppendUvarint(dst, uint64(len(m.buckets[i])))
		return append(dst, m.buckets[i]...)
	})
}

// Chunks implements Set.
func (m *MembershipSet) Chunks(max int) ([][]byte, error) {
	c, err := m.serializer(max)
	if err != nil {
		return nil, err
	}
	return c.all()
}

func (d *Delta) serializer(max int) (*chunker, error) {
	kind := byte(kindDeltaLabeled)
	if d.form == Membership {
		kind = kindDeltaMembershp
	}
	h := header{kind: kind, com: d.com, params: Params{FPRBits: DefaultFPRBits, Buckets: 1}, from: d.from, to: d.to, n1: uint64(len(d.added)), n2: uint64(len(d.removed))}
	na := len(d.added)
	return newChunker(max, h, na+len(d.removed), func(i int, dst []byte) []byte {
		if i < na {
			return appendEntry(dst, &d.added[i], d.form != Membership)
		}
		return append(dst, d.removed[i-na][:]...)
	})
}

// Chunks serialises the delta (labeled; the responder strips the labels for
// membership-form queriers).
func (d *Delta) Chunks(max int) ([][]byte, error) {
	c, err := d.serializer(max)
	if err != nil {
		return nil, err
	}
	return c.all()
}

// Decoder reassembles one encoding or delta from its chunks, validating
// every field. Feed it chunks with Write until it reports done.
type Decoder struct {
	maxItems int
	h        header
	started  bool
	done     bool
	seq      uint32
	nrec     uint64
	got      uint64
	items    uint64 // membership: items seen in buckets

	ents    []entry
	removed [][TagSize]byte
	buckets [][]byte
}

// NewDecoder returns a decoder that refuses objects of more than maxItems
// items (0: DefaultMaxItems).
func NewDecoder(maxItems int) *Decoder {
	if maxItems <= 0 {
		maxItems = DefaultMaxItems
	}
	return &Decoder{maxItems: maxItems}
}

// Done reports whether the object is complete.
func (d *Decoder) Done() bool { return d.done }

// Write consumes one chunk and reports whether the object is complete.
func (d *Decoder) Write(chunk []byte) (bool, error) {
	if d.done {
		return true, fmt.Errorf("%w: chunk after the end", ErrMalformed)
	}
	if !d.started {
		h, err := parseHeader(chunk)
		if err != nil {
			return false, err
		}
		if h.n1 > uint64(d.maxItems) || h.n2 > uint64(d.maxItems) {
			return false, fmt.Errorf("%w: %d+%d items, more than the limit of %d", ErrMalformed, h.n1, h.n2, d.maxItems)
		}
		d.h, d.started = h, true
		switch h.kind {
		case kindMembership:
			d.nrec = uint64(h.params.Buckets)
			if d.nrec > uint64(d.maxItems) {
				return false, fmt.Errorf("%w: %d buckets", ErrMalformed, d.nrec)
			}
		default:
			d.nrec = h.n1 + h.n2
		}
		d.done = d.nrec == 0 && h.n1 == 0
		if h.kind == kindMembership && d.nrec > 0 {
			d.buckets = make([][]byte, 0, min(d.nrec, 1<<16))
		} else {
			d.ents = make([]entry, 0, min(h.n1, 1<<16))
		}
		return d.done, nil
	}
	if len(chunk) < bodyHdrSize || string(chunk[:4]) != bodyMagic || binary.BigEndian.Uint32(chunk[4:]) != d.seq || len(chunk) == bodyHdrSize {
		return false, fmt.Errorf("%w: body chunk %d", ErrMalformed, d.seq)
	}
	d.seq++
	b := chunk[bodyHdrSize:]
	for len(b) > 0 {
		if d.got >= d.nrec {
			return false, fmt.Errorf("%w: more records than the header's %d", ErrMalformed, d.nrec)
		}
		var err error
		b, err = d.record(b)
		if err != nil {
			return false, err
		}
		d.got++
	}
	if d.got == d.nrec {
		if d.h.kind == kindMembership && d.items != d.h.n1 {
			return false, fmt.Errorf("%w: buckets hold %d items, header says %d", ErrMalformed, d.items, d.h.n1)
		}
		d.done = true
	}
	return d.done, nil
}

func (d *Decoder) record(b []byte) ([]byte, error) {
	labeled := d.h.kind == kindLabeled || d.h.kind == kindDeltaLabeled
	switch {
	case d.h.kind == kindMembership:
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return nil, fmt.Errorf("%w: bucket %d length", ErrMalformed, d.got)
		}
		bk := bytes.Clone(b[n : n+int(l)])
		if _, err := decodeBucket(bk, d.h.params.width(), 0, func(uint64) {}); err != nil {
			return nil, fmt.Errorf("%w: bucket %d: %v", ErrMalformed, d.got, err)
		}
		d.items += uint64(bucketCount(bk))
		if d.items > d.h.n1 {
			return nil, fmt.Errorf("%w: buckets hold more than %d items", ErrMalformed, d.h.n1)
		}
		d.buckets = append(d.buckets, bk)
		return b[n+int(l):], nil
	case d.got < d.h.n1: // an entry
		if len(b) < TagSize {
			return nil, fmt.Errorf("%w: truncated entry", ErrMalformed)
		}
		var e entry
		copy(e.tag[:], b)
		b = b[TagSize:]
		if len(d.ents) > 0 && bytes.Compare(d.ents[len(d.ents)-1].tag[:], e.tag[:]) >= 0 {
			return nil, fmt.Errorf("%w: entry tags not strictly ascending", ErrMalformed)
		}
		if labeled {
			l, n := binary.Uvarint(b)
			if n <= 0 || l < sealOverhead || l > sealOverhead+MaxLabelSize || l > uint64(len(b)-n) {
				return nil, fmt.Errorf("%w: sealed labels of entry %d", ErrMalformed, d.got)
			}
			e.sealed = bytes.Clone(b[n : n+int(l)])
			b = b[n+int(l):]
		}
		d.ents = append(d.ents, e)
		return b, nil
	default: // a removed tag
		if len(b) < TagSize {
			return nil, fmt.Errorf("%w: truncated removed tag", ErrMalformed)
		}
		var t [TagSize]byte
		copy(t[:], b)
		if len(d.removed) > 0 && bytes.Compare(d.removed[len(d.removed)-1][:], t[:]) >= 0 {
			return nil, fmt.Errorf("%w: removed tags not strictly ascending", ErrMalformed)
		}
		d.removed = append(d.removed, t)
		return b[TagSize:], nil
	}
}

// Set returns the decoded encoding.
func (d *Decoder) Set() (Set, error) {
	if !d.done {
		return nil, fmt.Errorf("%w: incomplete", ErrMalformed)
	}
	switch d.h.kind {
	case kindLabeled:
		return &Encoding{com: d.h.com, params: d.h.params, version: d.h.to, ents: d.ents}, nil
	case kindMembership:
		return &MembershipSet{com: d.h.com, params: d.h.params, version: d.h.to, n: int(d.h.n1), buckets: d.buckets}, nil
	}
	return nil, fmt.Errorf("%w: a delta, not an encoding", ErrMalformed)
}

// Delta returns the decoded delta.
func (d *Decoder) Delta() (*Delta, error) {
	if !d.done {
		return nil, fmt.Errorf("%w: incomplete", ErrMalformed)
	}
	form := Labeled
	switch d.h.kind {
	case kindDeltaLabeled:
	case kindDeltaMembershp:
		form = Membership
	default:
		return nil, fmt.Errorf("%w: an encoding, not a delta", ErrMalformed)
	}
	return &Delta{com: d.h.com, from: d.h.from, to: d.h.to, form: form, added: d.ents, removed: d.removed}, nil
}

// DecodeSet decodes an encoding from all its chunks.
func DecodeSet(chunks [][]byte, maxItems int) (Set, error) {
	d := NewDecoder(maxItems)
	if err := feed(d, chunks); err != nil {
		return nil, err
	}
	return d.Set()
}

// DecodeDelta decodes a delta from all its chunks.
func DecodeDelta(chunks [][]byte, maxItems int) (*Delta, error) {
	d := NewDecoder(maxItems)
	if err := feed(d, chunks); err != nil {
		return nil, err
	}
	return d.Delta()
}

func feed(d *Decoder, chunks [][]byte) error {
	for i, c := range chunks {
		done, err := d.Write(c)
		if err != nil {
			return err
		}
		if done && i != len(chunks)-1 {
			return fmt.Errorf("%w: %d chunks after the end", ErrMalformed, len(chunks)-1-i)
		}
	}
	return nil
}
