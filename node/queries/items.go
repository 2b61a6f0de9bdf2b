package queries

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"xnode/plugins"
)

// itemSet is one side's protocol input: the positions of the rows the
// plugin's Prepare chose, ascending, and any keys it replaced. The
// identifiers themselves are read from the view again during the protocol,
// so memory is 8 bytes per item.
type itemSet struct {
	pos  []int64
	keys map[int]string // item index → replacement key
	// labels are the items' labels (psi.labeled responders), nil if none.
	labels []string
	// sum is the element-wise sum of the items' Values mod 2^64
	// (secagg.sum), nil if no item has values.
	sum []uint64
}

// prepare runs the plugin's Prepare over the view's rows with the given
// columns and collects the items it emits.
func prepare(ctx context.Context, p plugins.Plugin, v View, role plugins.Role, params map[string]string, columns []string) (*itemSet, error) {
	columns = expandColumns(v.Columns(), columns)
	cols, err := selectColumns(v.Columns(), columns)
	if err != nil {
		return nil, err
	}
	rows, err := v.Rows(ctx, columns)
	if err != nil {
		return nil, err
	}
	set := &itemSet{}
	last := int64(-1)
	err = p.Prepare(ctx, plugins.PrepareRequest{Params: params, Role: role, Columns: cols}, rows, func(items []plugins.Item) error {
		for _, it := range items {
			if it.Pos <= last || it.Pos >= int64(v.Len()) {
				return fmt.Errorf("plugin emitted item position %d out of order or beyond the %d rows", it.Pos, v.Len())
			}
			last = it.Pos
			if it.Key != "" {
				if set.keys == nil {
					set.keys = map[int]string{}
				}
				set.keys[len(set.pos)] = it.Key
			}
			if it.Label != "" && set.labels == nil {
				set.labels = make([]string, len(set.pos), cap(set.pos))
			}
			if set.labels != nil {
				set.labels = append(set.labels, it.Label)
			}
			if len(it.Values) > 0 {
				if set.sum == nil {
					set.sum = make([]uint64, len(it.Values))
				}
				if len(it.Values) != len(set.sum) {
					return fmt.Errorf("plugin emitted a vector of %d values after one of %d", len(it.Values), len(set.sum))
				}
				for i, x := range it.Values {
					set.sum[i] += uint64(x)
				}
			}
			set.pos = append(set.pos, it.Pos)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("the plugin failed to prepare the %s's input: %w", role, err)
	}
	return set, nil
}

// AllLabels in a plan's column list stands for every label column of that
// side's dataset: a plugin such as risk-check reveals whatever labels the
// participant imported, under their names.
const AllLabels = "*"

// expandColumns replaces AllLabels with the view's label columns.
func expandColumns(all []plugins.Column, names []string) []string {
	if !slices.Contains(names, AllLabels) {
		return names
	}
	out := make([]string, 0, len(names)+len(all))
	for _, n := range names {
		if n != AllLabels {
			out = append(out, n)
			continue
		}
		for _, c := range all {
			if c.Type == plugins.ColumnLabel && !slices.Contains(names, c.Name) {
				out = append(out, c.Name)
			}
		}
	}
	return out
}

// selectColumns returns the named columns' descriptions, in that order.
func selectColumns(all []plugins.Column, names []string) ([]plugins.Column, error) {
	out := make([]plugins.Column, 0, len(names))
	for _, n := range names {
		i, err := plugins.ColumnIndex(all, n)
		if err != nil {
			return nil, fmt.Errorf("%w: the query reads column %q, which the dataset lacks", errInvalidColumns, n)
		}
		out = append(out, all[i])
	}
	return out, nil
}

var errInvalidColumns = errors.New("invalid columns")

// source feeds an itemSet's identifiers to a protocol: it walks the view's
// identifiers in position order and yields those of the chosen rows.
type source struct {
	set  *itemSet
	keys KeyReader
	buf  [][]byte
	have int // keys in buf
	used int // keys of buf consumed
	pos  int64
	next int // next item index
}

func newSource(ctx context.Context, v View, set *itemSet) (*source, error) {
	kr, err := v.Keys(ctx)
	if err != nil {
		return nil, err
	}
	return &source{set: set, keys: kr, buf: make([][]byte, 4096)}, nil
}

func (s *source) Len() int { return len(s.set.pos) }

func (s *source) Next(dst [][]byte) (int, error) {
	n := 0
	for n < len(dst) && s.next < len(s.set.pos) {
		if s.used == s.have {
			k, err := s.keys.Next(s.buf)
			if err == io.EOF || (err == nil && k == 0) {
				return n, fmt.Errorf("dataset ended before row %d", s.set.pos[s.next])
			}
			if err != nil {
				return n, err
			}
			s.have, s.used = k, 0
		}
		key := s.buf[s.used]
		pos := s.pos
		s.used++
		s.pos++
		if pos != s.set.pos[s.next] {
			continue
		}
		if repl, ok := s.set.keys[s.next]; ok {
			dst[n] = append(dst[n][:0], repl...)
		} else {
			dst[n] = append(dst[n][:0], key...)
		}
		n++
		s.next++
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// matchReader feeds the querier's matched rows to Finalize, peer by peer.
type matchReader struct {
	ctx     context.Context
	view    View
	columns []string
	peers   []peerMatches
	peer    int
	off     int
	chunk   []plugins.Match
}

type peerMatches struct {
	name   string
	pos    []int64  // row positions, ascending
	labels []string // the peer's label per match (psi.labeled), or nil
}

func (m *matchReader) Next() ([]plugins.Match, error) {
	for m.peer < len(m.peers) && m.off == len(m.peers[m.peer].pos) {
		m.peer++
		m.off = 0
	}
	if m.peer == len(m.peers) {
		return nil, io.EOF
	}
	pm := m.peers[m.peer]
	end := min(m.off+plugins.MaxChunk, len(pm.pos))
	m.chunk = m.chunk[:0]
	for i := m.off; i < end; i++ {
		row, err := m.view.Row(m.ctx, pm.pos[i], m.columns)
		if err != nil {
			return nil, err
		}
		match := plugins.Match{Peer: pm.name, Row: row}
		if pm.labels != nil {
			match.Label = pm.labels[i]
		}
		m.chunk = append(m.chunk, match)
	}
	m.off = end
	return m.chunk, nil
}
