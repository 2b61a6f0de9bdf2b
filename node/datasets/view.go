package datasets

import (
	"context"
	"fmt"
	"io"
	"iter"

	"xnode/node/store"
)

// View is one immutable version of a dataset, open for reading. It holds no
// transaction: every read is a short transaction of its own, so a long
// protocol run never blocks writers. If the version is dropped meanwhile,
// reads fail with an error wrapping ErrNotFound. A View is safe for
// concurrent use.
type View struct {
	st   *store.Store
	info Info
}

// Row is one stored row.
type Row struct {
	Pos int64  `json:"pos"` // 0-based position in import order (duplicates and invalid rows skipped)
	Key string `json:"key"` // namespaced identifier, e.g. "cn_id:110101199003071234"
	ID  string `json:"id"`  // the plain normalised identifier, for showing to an analyst
	// Values holds the requested columns (for Row and Lookup: all of
	// Info().Columns), in that order.
	Values []Value `json:"values"`
}

// Open opens a version of a dataset for reading; version 0 means the latest.
func (s *Service) Open(ctx context.Context, name string, version uint64) (*View, error) {
	info, err := s.version(ctx, name, version)
	if err != nil {
		return nil, err
	}
	return &View{st: s.st, info: info}, nil
}

// Info describes the version.
func (v *View) Info() Info { return v.info }

// Name is the dataset's name.
func (v *View) Name() string { return v.info.Name }

// Version is the version number, which a query records.
func (v *View) Version() uint64 { return v.info.Version }

// Len is the number of rows (distinct identifiers).
func (v *View) Len() int64 { return v.info.Rows }

// Columns are the value and label columns in row order.
func (v *View) Columns() []Column { return v.info.Columns }

func (v *View) readErr(err error) error {
	return fmt.Errorf("failed to read dataset %q version %d: %w", v.info.Name, v.info.Version, err)
}

func (v *View) toRow(r store.Row, want []bool, out *Row) error {
	out.Pos = int64(r.Pos)
	out.Key = string(r.Key)
	_, out.ID, _ = SplitKey(out.Key)
	var err error
	if out.Values, err = decodeCells(r.Value, v.info.Columns, want, out.Values[:0]); err != nil {
		return v.readErr(err)
	}
	return nil
}

// Row returns the row at a position (0 ≤ pos < Len()).
func (v *View) Row(ctx context.Context, pos int64) (Row, error) {
	if err := ctx.Err(); err != nil {
		return Row{}, err
	}
	if pos < 0 {
		return Row{}, fmt.Errorf("row position %d is negative", pos)
	}
	r, err := v.st.RowAt(v.info.Name, v.info.Version, uint64(pos))
	if err != nil {
		return Row{}, v.readErr(err)
	}
	var out Row
	return out, v.toRow(r, nil, &out)
}

// Lookup returns the row with a namespaced identifier (as Key returns and
// IDReader yields). The error wraps ErrNotFound if there is none.
func (v *View) Lookup(ctx context.Context, key []byte) (Row, error) {
	if err := ctx.Err(); err != nil {
		return Row{}, err
	}
	r, err := v.st.RowByKey(v.info.Name, v.info.Version, key)
	if err != nil {
		return Row{}, v.readErr(err)
	}
	var out Row
	return out, v.toRow(r, nil, &out)
}

// IDReader reads the namespaced identifiers of a version in position order,
// in batches; each batch is one short read transaction.
type IDReader struct {
	v    *View
	ctx  context.Context
	next uint64
	buf  []store.Row
}

// IDs returns a reader of the version's namespaced identifiers from the
// first row. ctx bounds every Next call.
func (v *View) IDs(ctx context.Context) *IDReader {
	return &IDReader{v: v, ctx: ctx}
}

// Next fills dst with the next identifiers and returns how many it filled.
// It reuses the capacity of the slices already in dst, so a caller that
// keeps an identifier past the next call must copy it. After the last
// identifier it returns 0, io.EOF.
func (r *IDReader) Next(dst [][]byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if len(dst) == 0 {
		return 0, nil
	}
	if len(r.buf) < len(dst) {
		r.buf = make([]store.Row, len(dst))
	}
	n, err := r.v.st.ReadRows(r.v.info.Name, r.v.info.Version, r.next, r.buf[:len(dst)])
	if err == io.EOF {
		return 0, io.EOF
	}
	if err != nil {
		return 0, r.v.readErr(err)
	}
	for i := 0; i < n; i++ {
		dst[i] = append(dst[i][:0], r.buf[i].Key...)
	}
	r.next = r.buf[n-1].Pos + 1
	return n, nil
}

// rowBatch is how many rows Rows reads per transaction.
const rowBatch = 1024

// Rows iterates over all rows in position order with the named columns
// (none: only identifiers; use Columns() names for all). Each yielded Row is
// new and may be kept. The first error, such as an unknown column, is
// yielded once and ends the iteration.
func (v *View) Rows(ctx context.Context, columns ...string) iter.Seq2[Row, error] {
	return func(yield func(Row, error) bool) {
		want := make([]bool, len(v.info.Columns))
		order := make([]int, 0, len(columns)) // requested column → index among wanted
		for _, name := range columns {
			idx := -1
			for i, c := range v.info.Columns {
				if c.Name == name {
					idx = i
				}
			}
			if idx < 0 {
				yield(Row{}, fmt.Errorf("dataset %q has no column %q", v.info.Name, name))
				return
			}
			want[idx] = true
			order = append(order, idx)
		}
		// position of each column among the wanted ones (decodeCells
		// returns them in column order)
		rank := make([]int, len(want))
		k := 0
		for i, w := range want {
			if w {
				rank[i] = k
				k++
			}
		}
		buf := make([]store.Row, rowBatch)
		var next uint64
		for {
			if err := ctx.Err(); err != nil {
				yield(Row{}, err)
				return
			}
			n, err := v.st.ReadRows(v.info.Name, v.info.Version, next, buf)
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(Row{}, v.readErr(err))
				return
			}
			for _, r := range buf[:n] {
				var row Row
				if err := v.toRow(r, want, &row); err != nil {
					yield(Row{}, err)
					return
				}
				vals := make([]Value, len(order))
				for i, idx := range order {
					vals[i] = row.Values[rank[idx]]
				}
				row.Values = vals
				if !yield(row, nil) {
					return
				}
			}
			next = buf[n-1].Pos + 1
		}
	}
}
