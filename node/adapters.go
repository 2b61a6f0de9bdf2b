package node

import (
	"context"
	"io"
	"iter"

	"xnode/node/datasets"
	"xnode/node/queries"
	"xnode/plugins"
)

// datasetAdapter gives queries the dataset views they read.
type datasetAdapter struct{ s *datasets.Service }

func (a datasetAdapter) Open(ctx context.Context, name string, version uint64) (queries.View, error) {
	v, err := a.s.Open(ctx, name, version)
	if err != nil {
		return nil, mapNotFound(err)
	}
	cols := make([]plugins.Column, len(v.Columns()))
	for i, c := range v.Columns() {
		cols[i] = plugins.Column{Name: c.Name, Type: plugins.ColumnType(c.Type), Scale: c.Scale}
	}
	return &viewAdapter{v: v, cols: cols}, nil
}

type viewAdapter struct {
	v    *datasets.View
	cols []plugins.Column
}

func (a *viewAdapter) Version() uint64           { return a.v.Version() }
func (a *viewAdapter) Len() int                  { return int(a.v.Len()) }
func (a *viewAdapter) Close() error              { return nil }
func (a *viewAdapter) Columns() []plugins.Column { return a.cols }

func (a *viewAdapter) Keys(ctx context.Context) (queries.KeyReader, error) {
	return a.v.IDs(ctx), nil
}

func (a *viewAdapter) Rows(ctx context.Context, columns []string) (plugins.RowReader, error) {
	next, stop := iter.Pull2(a.v.Rows(ctx, columns...))
	return &rowReader{next: next, stop: stop, buf: make([]plugins.Row, 0, plugins.MaxChunk)}, nil
}

func (a *viewAdapter) Row(ctx context.Context, pos int64, columns []string) (plugins.Row, error) {
	row, err := a.v.Row(ctx, pos)
	if err != nil {
		return plugins.Row{}, err
	}
	out := plugins.Row{Pos: row.Pos, Key: row.Key, Values: make([]plugins.Value, 0, len(columns))}
	for _, name := range columns {
		for i, c := range a.v.Columns() {
			if c.Name == name {
				out.Values = append(out.Values, value(row.Values[i]))
			}
		}
	}
	return out, nil
}

func value(v datasets.Value) plugins.Value {
	return plugins.Value{Null: v.Null, Int: v.Int, Text: v.Text}
}

// rowReader chunks a dataset's row iterator for a plugin.
type rowReader struct {
	next func() (datasets.Row, error, bool)
	stop func()
	buf  []plugins.Row
	done bool
}

func (r *rowReader) Next() ([]plugins.Row, error) {
	if r.done {
		return nil, io.EOF
	}
	r.buf = r.buf[:0]
	for len(r.buf) < plugins.MaxChunk {
		row, err, ok := r.next()
		if !ok {
			r.done = true
			r.stop()
			break
		}
		if err != nil {
			r.done = true
			r.stop()
			return nil, err
		}
		vals := make([]plugins.Value, len(row.Values))
		for i, v := range row.Values {
			vals[i] = value(v)
		}
		r.buf = append(r.buf, plugins.Row{Pos: row.Pos, Key: row.Key, Values: vals})
	}
	if len(r.buf) == 0 {
		return nil, io.EOF
	}
	return r.buf, nil
}
