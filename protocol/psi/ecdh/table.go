package ecdh

import (
	"cmp"
	"encoding/binary"
	"slices"
)

// entry is one digest the querier got back, with the position of the item
// it belongs to (meaningless in cardinality mode, where replies are sorted).
type entry struct {
	hi, lo uint64
	pos    uint32
}

func entryOf(d []byte, pos uint32) entry {
	return entry{hi: binary.BigEndian.Uint64(d), lo: binary.BigEndian.Uint64(d[8:]), pos: pos}
}

func cmpEntry(a, b entry) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// table looks digests up among the querier's reply digests.
type table struct {
	entries []entry
	hit     []bool // per entry: its digest group has matched
	groups  int    // distinct digests matched
}

func (t *table) add(d []byte, pos uint32) { t.entries = append(t.entries, entryOf(d, pos)) }

func (t *table) seal() {
	slices.SortFunc(t.entries, func(a, b entry) int {
		if c := cmpEntry(a, b); c != 0 {
			return c
		}
		return cmp.Compare(a.pos, b.pos)
	})
	t.hit = make([]bool, len(t.entries))
}

// lookup marks the group of digest d as matched and reports whether d is
// present.
func (t *table) lookup(d []byte) bool {
	key := entryOf(d, 0)
	i, found := slices.BinarySearchFunc(t.entries, key, cmpEntry)
	if !found {
		return false
	}
	if !t.hit[i] {
		t.groups++
		for j := i; j < len(t.entries) && cmpEntry(t.entries[j], key) == 0; j++ {
			t.hit[j] = true
		}
	}
	return true
}

// matches returns the positions of all matched entries, ascending.
func (t *table) matches() []int {
	out := []int{}
	for i, e := range t.entries {
		if t.hit[i] {
			out = append(out, int(e.pos))
		}
	}
	slices.Sort(out)
	return out
}
