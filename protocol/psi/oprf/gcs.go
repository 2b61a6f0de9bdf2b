package oprf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"xnode/protocol/internal/par"
)

// MembershipSet is the compact membership-only form: a Golomb-Rice coded
// set of truncated tags, split into Params.Buckets buckets so that a lookup
// decodes one bucket (about 2^BucketBits values).
//
// A tag t maps to bucket j = ⌊t[0:8]·B / 2^64⌋ and value
// v = ⌊t[8:16]·W / 2^64⌋ in [0, W), W = 2^(FPRBits+BucketBits). A bucket
// stores its values sorted as Rice-coded gaps with parameter k (chosen per
// bucket for the shortest code): one byte k, uvarint count, then per gap
// q = gap>>k in unary (q ones, a zero) and the low k bits, MSB first,
// zero-padded to a byte.
type MembershipSet struct {
	com     Commitment
	params  Params
	version uint64
	n       int
	buckets [][]byte
}

var _ Set = (*MembershipSet)(nil)

func (m *MembershipSet) Form() Form             { return Membership }
func (m *MembershipSet) Commitment() Commitment { return m.com }
func (m *MembershipSet) Version() uint64        { return m.version }
func (m *MembershipSet) Len() int               { return m.n }
func (m *MembershipSet) Params() Params         { return m.params }

// FalsePositiveRate is n/(B·W): a non-member's value is uniform in its
// bucket's range of W values, of which the bucket holds at most its count.
func (m *MembershipSet) FalsePositiveRate() float64 { return m.params.fpr(m.n) }

// EncodedSize is the bytes of the coded buckets (what dominates the
// serialised form).
func (m *MembershipSet) EncodedSize() int {
	s := 0
	for _, b := range m.buckets {
		s += len(b)
	}
	return s
}

func (p Params) locate(t [TagSize]byte) (bucket int, v uint64) {
	j, _ := bits.Mul64(binary.BigEndian.Uint64(t[:8]), uint64(p.Buckets))
	v, _ = bits.Mul64(binary.BigEndian.Uint64(t[8:]), p.width())
	return int(j), v
}

func buildMembership(com Commitment, p Params, version uint64, tags [][TagSize]byte) *MembershipSet {
	vals := make([][]uint64, p.Buckets)
	for _, t := range tags {
		j, v := p.locate(t)
		vals[j] = append(vals[j], v)
	}
	m := &MembershipSet{com: com, params: p, version: version, n: len(tags), buckets: make([][]byte, p.Buckets)}
	_ = par.For(par.Workers(0), len(vals), 256, func(lo, hi int) error {
		for j := lo; j < hi; j++ {
			slices.Sort(vals[j])
			m.buckets[j] = encodeBucket(vals[j], p.width())
		}
		return nil
	})
	return m
}

// riceCost is the bits of the gaps coded with parameter k.
func riceCost(vals []uint64, k uint) uint64 {
	var c, prev uint64
	for _, v := range vals {
		c += (v-prev)>>k + 1 + uint64(k)
		prev = v
	}
	return c
}

// encodeBucket codes sorted values in [0, w).
func encodeBucket(vals []uint64, w uint64) []byte {
	out := []byte{0}
	out = binary.AppendUvarint(out, uint64(len(vals)))
	if len(vals) == 0 {
		return out
	}
	// Start near log2 of the mean gap and move while it gets shorter.
	k := uint(bits.Len64(w/uint64(len(vals)))) - 1
	best := riceCost(vals, k)
	for k > 0 {
		if c := riceCost(vals, k-1); c < best {
			k, best = k-1, c
		} else {
			break
		}
	}
	for k < 63 {
		if c := riceCost(vals, k+1); c < best {
			k, best = k+1, c
		} else {
			break
		}
	}
	out[0] = byte(k)
	var bw bitWriter
	bw.buf = out
	var prev uint64
	for _, v := range vals {
		g := v - prev
		prev = v
		for q := g >> k; q > 0; q-- {
			bw.bit(1)
		}
		bw.bit(0)
		bw.bits(g&(1<<k-1), k)
	}
	return bw.flush()
}

type bitWriter struct {
	buf []byte
	acc byte
	n   uint
}

func (w *bitWriter) bit(b uint64) {
	w.acc = w.acc<<1 | byte(b)
	w.n++
	if w.n == 8 {
		w.buf = append(w.buf, w.acc)
		w.acc, w.n = 0, 0
	}
}

func (w *bitWriter) bits(v uint64, k uint) {
	for i := int(k) - 1; i >= 0; i-- {
		w.bit(v >> uint(i) & 1)
	}
}

func (w *bitWriter) flush() []byte {
	if w.n > 0 {
		w.buf = append(w.buf, w.acc<<(8-w.n))
	}
	return w.buf
}

var errBucket = errors.New("bad Golomb-coded bucket")

// decodeBucket decodes and validates a bucket: values ascending (equal
// allowed), all below w, the count exact, padding zero, no trailing bytes.
// It stops early, returning true, when it meets want (if want < w).
func decodeBucket(b []byte, w uint64, want uint64, emit func(uint64)) (found bool, err error) {
	if len(b) < 2 {
		return false, errBucket
	}
	k := uint(b[0])
	if k > 63 {
		return false, errBucket
	}
	cnt, l := binary.Uvarint(b[1:])
	if l <= 0 || cnt > uint64(len(b))*8 {
		return false, errBucket
	}
	data := b[1+l:]
	pos, total := uint64(0), uint64(len(data))*8
	bit := func() (uint64, bool) {
		if pos >= total {
			return 0, false
		}
		v := uint64(data[pos/8]>>(7-pos%8)) & 1
		pos++
		return v, true
	}
	var prev uint64
	for i := uint64(0); i < cnt; i++ {
		var q uint64
		for {
			x, ok := bit()
			if !ok {
				return false, errBucket
			}
			if x == 0 {
				break
			}
			q++
			if q > w>>k {
				return false, errBucket
			}
		}
		var r uint64
		for j := uint(0); j < k; j++ {
			x, ok := bit()
			if !ok {
				return false, errBucket
			}
			r = r<<1 | x
		}
		g := q<<k | r
		if g >= w-prev {
			return false, errBucket
		}
		prev += g
		if emit != nil {
			emit(prev)
		} else if prev == want {
			return true, nil
		} else if prev > want {
			return false, nil
		}
	}
	if total-pos >= 8 || (pos%8 != 0 && data[len(data)-1]&(1<<(8-pos%8)-1) != 0) {
		return false, errBucket
	}
	if cnt == 0 && (k != 0 || len(data) != 0) {
		return false, errBucket
	}
	return false, nil
}

func bucketCount(b []byte) int {
	c, _ := binary.Uvarint(b[1:])
	return int(c)
}

// Lookup implements Set. A hit has nil labels.
func (m *MembershipSet) Lookup(out []byte) ([]byte, bool, error) {
	j, v := m.params.locate(deriveTag(m.com.Epoch, out))
	hit, err := decodeBucket(m.buckets[j], m.params.width(), v, nil)
	if err != nil {
		return nil, false, fmt.Errorf("%w: bucket %d: %v", ErrMalformed, j, err)
	}
	return nil, hit, nil
}

// Apply implements Set: it re-codes the buckets the delta touches.
func (m *MembershipSet) Apply(d *Delta) (Set, error) {
	if err := d.check(m.com, m.version, Membership); err != nil {
		return nil, err
	}
	w := m.params.width()
	touched := map[int][]uint64{}
	get := func(j int) ([]uint64, error) {
		if v, ok := touched[j]; ok {
			return v, nil
		}
		var vals []uint64
		if _, err := decodeBucket(m.buckets[j], w, 0, func(v uint64) { vals = append(vals, v) }); err != nil {
			return nil, fmt.Errorf("%w: bucket %d: %v", ErrMalformed, j, err)
		}
		return vals, nil
	}
	for _, t := range d.removed {
		j, v := m.params.locate(t)
		vals, err := get(j)
		if err != nil {
			return nil, err
		}
		i, ok := slices.BinarySearch(vals, v)
		if !ok {
			return nil, fmt.Errorf("%w: delta %d→%d removes an item not in the set", ErrStale, d.from, d.to)
		}
		touched[j] = slices.Delete(vals, i, i+1)
	}
	for _, e := range d.added {
		j, v := m.params.locate(e.tag)
		vals, err := get(j)
		if err != nil {
			return nil, err
		}
		i, _ := slices.BinarySearch(vals, v)
		touched[j] = slices.Insert(vals, i, v)
	}
	out := &MembershipSet{com: m.com, params: m.params, version: d.to, n: m.n + len(d.added) - len(d.removed), buckets: slices.Clone(m.buckets)}
	for j, vals := range touched {
		out.buckets[j] = encodeBucket(vals, w)
	}
	return out, nil
}

// Equal reports whether two membership sets are identical.
func (m *MembershipSet) Equal(o *MembershipSet) bool {
	return m.com == o.com && m.params == o.params && m.version == o.version && m.n == o.n &&
		slices.EqualFunc(m.buckets, o.buckets, func(a, b []byte) bool { return string(a) == string(b) })
}
