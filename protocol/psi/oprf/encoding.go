package oprf

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
)

// Set is an encoding a querier looks identifiers up in: the labeled
// [*Encoding] or the compact [*MembershipSet]. Both are immutable; Apply
// returns a new Set.
type Set interface {
	// Form is the set's form.
	Form() Form
	// Commitment is the epoch and public key the set was built under.
	Commitment() Commitment
	// Version is the encoding version (1 for a fresh Encode, +1 per delta).
	Version() uint64
	// Len is the number of items.
	Len() int
	// Params are the epoch's membership parameters.
	Params() Params
	// FalsePositiveRate bounds the probability that Lookup reports a hit
	// for one output of an identifier that is not in the set.
	FalsePositiveRate() float64
	// Lookup finds the item whose OPRF output is out and opens its labels
	// (nil in the membership form). It is an error if a tag matches but the
	// labels do not open.
	Lookup(out []byte) (labels []byte, hit bool, err error)
	// Apply returns the set with delta d applied; d must start at Version.
	Apply(d *Delta) (Set, error)
	// Chunks serialises the set as chunks of at most max bytes.
	Chunks(max int) ([][]byte, error)

	serializer(max int) (*chunker, error)
}

type entry struct {
	tag    [TagSize]byte
	sealed []byte // nonce ‖ AES-256-GCM ciphertext ‖ tag; nil in membership deltas
}

// Encoding is the labeled form: per item its tag and sealed labels, sorted by
// tag.
type Encoding struct {
	com     Commitment
	params  Params
	version uint64
	ents    []entry
}

var _ Set = (*Encoding)(nil)

func (e *Encoding) Form() Form             { return Labeled }
func (e *Encoding) Commitment() Commitment { return e.com }
func (e *Encoding) Version() uint64        { return e.version }
func (e *Encoding) Len() int               { return len(e.ents) }
func (e *Encoding) Params() Params         { return e.params }

// FalsePositiveRate is |set|·2^-128: a full 16-byte tag must collide.
func (e *Encoding) FalsePositiveRate() float64 { return float64(len(e.ents)) / (1 << 64) / (1 << 64) }

func (e *Encoding) find(t [TagSize]byte) (int, bool) {
	i := sort.Search(len(e.ents), func(i int) bool { return bytes.Compare(e.ents[i].tag[:], t[:]) >= 0 })
	return i, i < len(e.ents) && e.ents[i].tag == t
}

// Lookup implements Set.
func (e *Encoding) Lookup(out []byte) ([]byte, bool, error) {
	t := deriveTag(e.com.Epoch, out)
	i, ok := e.find(t)
	if !ok {
		return nil, false, nil
	}
	labels, err := open(e.com.Epoch, out, t, e.ents[i].sealed)
	if err != nil {
		return nil, true, fmt.Errorf("%w: an entry's labels do not open under its tag's key", ErrProtocol)
	}
	if labels == nil {
		labels = []byte{}
	}
	return labels, true, nil
}

// Membership returns the compact membership form of the encoding.
func (e *Encoding) Membership() *MembershipSet {
	tags := make([][TagSize]byte, len(e.ents))
	for i := range e.ents {
		tags[i] = e.ents[i].tag
	}
	return buildMembership(e.com, e.params, e.version, tags)
}

// Apply implements Set.
func (e *Encoding) Apply(d *Delta) (Set, error) {
	if err := d.check(e.com, e.version, Labeled); err != nil {
		return nil, err
	}
	rm := 0
	keep := make([]entry, 0, len(e.ents)+len(d.added)-len(d.removed))
	for _, en := range e.ents {
		if rm < len(d.removed) && d.removed[rm] == en.tag {
			rm++
			continue
		}
		keep = append(keep, en)
	}
	if rm != len(d.removed) {
		return nil, fmt.Errorf("%w: delta %d→%d removes items not in the encoding", ErrStale, d.from, d.to)
	}
	// Merge the sorted additions.
	out := make([]entry, 0, len(keep)+len(d.added))
	i, j := 0, 0
	for i < len(keep) || j < len(d.added) {
		switch {
		case j == len(d.added) || (i < len(keep) && bytes.Compare(keep[i].tag[:], d.added[j].tag[:]) < 0):
			out = append(out, keep[i])
			i++
		case i < len(keep) && keep[i].tag == d.added[j].tag:
			return nil, fmt.Errorf("%w: delta %d→%d adds an item already present", ErrStale, d.from, d.to)
		default:
			out = append(out, d.added[j])
			j++
		}
	}
	return &Encoding{com: e.com, params: e.params, version: d.to, ents: out}, nil
}

// Equal reports whether two encodings are identical.
func (e *Encoding) Equal(o *Encoding) bool {
	return e.com == o.com && e.params == o.params && e.version == o.version &&
		slices.EqualFunc(e.ents, o.ents, func(a, b entry) bool { return a.tag == b.tag && bytes.Equal(a.sealed, b.sealed) })
}

// Delta takes an encoding from one version to the next: entries removed
// (by tag) and added (tag and sealed labels; a changed item is both).
type Delta struct {
	com      Commitment
	from, to uint64
	form     Form
	added    []entry         // sorted by tag
	removed  [][TagSize]byte // sorted
}

// From and To are the versions the delta connects.
func (d *Delta) From() uint64 { return d.from }

// To is the version after the delta.
func (d *Delta) To() uint64 { return d.to }

// Commitment is the epoch the delta belongs to.
func (d *Delta) Commitment() Commitment { return d.com }

// Size reports the entries added and removed.
func (d *Delta) Size() (added, removed int) { return len(d.added), len(d.removed) }

func (d *Delta) sort() {
	slices.SortFunc(d.added, func(a, b entry) int { return bytes.Compare(a.tag[:], b.tag[:]) })
	slices.SortFunc(d.removed, func(a, b [TagSize]byte) int { return bytes.Compare(a[:], b[:]) })
}

// forMembership strips the sealed labels, which the membership form does
// not use.
func (d *Delta) forMembership() *Delta {
	c := *d
	c.form = Membership
	c.added = make([]entry, len(d.added))
	for i := range d.added {
		c.added[i].tag = d.added[i].tag
	}
	return &c
}

func (d *Delta) check(com Commitment, version uint64, f Form) error {
	if d.com != com {
		return fmt.Errorf("%w: delta of %v applied to an encoding of %v", ErrStale, d.com, com)
	}
	if d.from != version || d.to != version+1 {
		return fmt.Errorf("%w: delta %d→%d applied to version %d", ErrStale, d.from, d.to, version)
	}
	if f == Labeled && d.form == Membership {
		return fmt.Errorf("%w: a membership delta has no labels for a labeled encoding", ErrStale)
	}
	return nil
}
