// Package match is the built-in match plugin: over ECDH-PSI intersection,
// the querier learns which of its identifiers each peer also holds, with
// chosen columns of its own matched rows. Responders learn the querier's
// set size. cmd plugins/match serves it as a plugin process.
package match

import (
	"context"
	"io"
	"strconv"
	"strings"

	"xnode/plugins"
)

// Version is the plugin's version.
const Version = "1.0.0"

var descriptor = plugins.Descriptor{
	Name:        "match",
	Version:     Version,
	Description: "Which of the querier's identifiers each peer also holds (PSI intersection).",
	Protocol:    plugins.Intersection,
	Params: []plugins.Param{
		{Name: "columns", Type: plugins.ParamString,
			Description: "comma-separated columns of the querier's dataset to add to each matched identifier"},
	},
	Reads: []plugins.ColumnUse{
		{Param: "columns", Role: "any", Side: plugins.Querier, Description: "shown beside matched identifiers"},
	},
	ResultColumns: []string{"peer", "id"},
}

// Plugin is the match plugin. The zero value is ready.
type Plugin struct{}

var _ plugins.Plugin = Plugin{}

// New returns the plugin.
func New() Plugin { return Plugin{} }

// Describe implements plugins.Plugin.
func (Plugin) Describe(context.Context) (plugins.Descriptor, error) { return descriptor, nil }

func parse(params map[string]string) ([]string, error) {
	p, err := plugins.CheckParams(descriptor, params)
	if err != nil {
		return nil, err
	}
	return plugins.ListParam(p["columns"]), nil
}

// Plan implements plugins.Plugin.
func (Plugin) Plan(_ context.Context, params map[string]string) (plugins.Plan, error) {
	cols, err := parse(params)
	if err != nil {
		return plugins.Plan{}, err
	}
	result := append([]string{}, descriptor.ResultColumns...)
	for _, c := range cols {
		if c == "peer" || c == "id" {
			c = "column_" + c // keep result columns unique
		}
		result = append(result, c)
	}
	return plugins.Plan{QuerierColumns: cols, ResultColumns: result}, nil
}

// Prepare implements plugins.Plugin: every row is one item.
func (Plugin) Prepare(ctx context.Context, req plugins.PrepareRequest, rows plugins.RowReader, emit func([]plugins.Item) error) error {
	if _, err := parse(req.Params); err != nil {
		return err
	}
	return plugins.PrepareRows(ctx, rows, emit, func(r plugins.Row) (plugins.Item, bool, error) {
		return plugins.Item{Pos: r.Pos}, true, nil
	})
}

// Finalize implements plugins.Plugin: one row per match, the peer, the
// plain identifier and the chosen columns.
func (Plugin) Finalize(ctx context.Context, req plugins.FinalizeRequest, matches plugins.MatchReader, emit func([]plugins.ResultRow) error) (plugins.Summary, error) {
	cols, err := parse(req.Params)
	if err != nil {
		return nil, err
	}
	idx := make([]int, len(cols))
	for i, c := range cols {
		if idx[i], err = plugins.ColumnIndex(req.Columns, c); err != nil {
			return nil, err
		}
	}
	var total int64
	for _, p := range req.Peers {
		total += p.Cardinality
	}
	var n int64
	out := make([]plugins.ResultRow, 0, plugins.MaxChunk)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk, err := matches.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		out = out[:0]
		for _, m := range chunk {
			id := m.Row.Key
			if _, plain, ok := strings.Cut(id, ":"); ok {
				id = plain
			}
			row := make(plugins.ResultRow, 2+len(idx))
			row[0], row[1] = m.Peer, id
			for i, j := range idx {
				row[2+i] = req.Columns[j].Format(m.Row.Values[j])
			}
			out = append(out, row)
		}
		n += int64(len(chunk))
		if err := emit(out); err != nil {
			return nil, err
		}
	}
	return plugins.Summary{
		"intersection_size": strconv.FormatInt(total, 10),
		"matched_rows":      strconv.FormatInt(n, 10),
		"own_size":          strconv.FormatInt(req.OwnSize, 10),
		"peers":             strconv.Itoa(len(req.Peers)),
		"revealed":          "the querier learned which of its identifiers each peer also holds; each peer learned only the querier's set size",
	}, nil
}
