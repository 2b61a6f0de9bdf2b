// Package overlap is the built-in overlap plugin: over ECDH-PSI
// cardinality, the querier learns how many of its identifiers each peer
// also holds, optionally counting only rows whose category or label column
// has a given value on either side. Responders learn the querier's set
// size. cmd plugins/overlap serves it as a plugin process.
package overlap

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"xnode/plugins"
)

// Version is the plugin's version.
const Version = "1.0.0"

var descriptor = plugins.Descriptor{
	Name:        "overlap",
	Version:     Version,
	Description: "How many of the querier's identifiers each peer also holds (PSI cardinality).",
	Protocol:    plugins.Cardinality,
	Params: []plugins.Param{
		{Name: "filter", Type: plugins.ParamString,
			Description: "COLUMN:VALUE; only the querier's rows whose category or label column COLUMN is VALUE take part"},
		{Name: "peer_filter", Type: plugins.ParamString,
			Description: "COLUMN:VALUE; only each peer's rows whose category or label column COLUMN is VALUE take part"},
	},
	Reads: []plugins.ColumnUse{
		{Param: "filter", Role: "category", Side: plugins.Querier, Description: "the column before the colon"},
		{Param: "peer_filter", Role: "category", Side: plugins.Responder, Description: "the column before the colon"},
	},
	ResultColumns: []string{"peer", "shared", "peer_size"},
}

// Plugin is the overlap plugin. The zero value is ready.
type Plugin struct{}

var _ plugins.Plugin = Plugin{}

// New returns the plugin.
func New() Plugin { return Plugin{} }

// Describe implements plugins.Plugin.
func (Plugin) Describe(context.Context) (plugins.Descriptor, error) { return descriptor, nil }

type filter struct{ column, value string }

func parseFilter(name, v string) (*filter, error) {
	if v == "" {
		return nil, nil
	}
	col, val, ok := strings.Cut(v, ":")
	if !ok || col == "" {
		return nil, fmt.Errorf("%w for plugin overlap: parameter %q is %q, want COLUMN:VALUE such as segment:retail; %s",
			plugins.ErrInvalidParams, name, v, plugins.Accepted(descriptor))
	}
	return &filter{column: col, value: val}, nil
}

type plan struct {
	querier, responder *filter
}

func parse(params map[string]string) (plan, error) {
	p, err := plugins.CheckParams(descriptor, params)
	if err != nil {
		return plan{}, err
	}
	var out plan
	if out.querier, err = parseFilter("filter", p["filter"]); err != nil {
		return plan{}, err
	}
	if out.responder, err = parseFilter("peer_filter", p["peer_filter"]); err != nil {
		return plan{}, err
	}
	return out, nil
}

// Plan implements plugins.Plugin.
func (Plugin) Plan(_ context.Context, params map[string]string) (plugins.Plan, error) {
	p, err := parse(params)
	if err != nil {
		return plugins.Plan{}, err
	}
	out := plugins.Plan{ResultColumns: descriptor.ResultColumns}
	if p.querier != nil {
		out.QuerierColumns = []string{p.querier.column}
	}
	if p.responder != nil {
		out.ResponderColumns = []string{p.responder.column}
	}
	return out, nil
}

// Prepare implements plugins.Plugin: every row, or every row that passes
// this side's filter, is one item.
func (Plugin) Prepare(ctx context.Context, req plugins.PrepareRequest, rows plugins.RowReader, emit func([]plugins.Item) error) error {
	p, err := parse(req.Params)
	if err != nil {
		return err
	}
	f := p.querier
	if req.Role == plugins.Responder {
		f = p.responder
	}
	col := -1
	if f != nil {
		if col, err = plugins.ColumnIndex(req.Columns, f.column); err != nil {
			return fmt.Errorf("overlap filter: %w", err)
		}
	}
	return plugins.PrepareRows(ctx, rows, emit, func(r plugins.Row) (plugins.Item, bool, error) {
		if f != nil {
			if v := r.Values[col]; v.Null || req.Columns[col].Format(v) != f.value {
				return plugins.Item{}, false, nil
			}
		}
		return plugins.Item{Pos: r.Pos}, true, nil
	})
}

// Finalize implements plugins.Plugin: one row per peer with the shared
// count and the peer's set size.
func (Plugin) Finalize(ctx context.Context, req plugins.FinalizeRequest, _ plugins.MatchReader, emit func([]plugins.ResultRow) error) (plugins.Summary, error) {
	if _, err := parse(req.Params); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var total int64
	rows := make([]plugins.ResultRow, 0, len(req.Peers))
	for _, p := range req.Peers {
		total += p.Cardinality
		rows = append(rows, plugins.ResultRow{p.Peer, strconv.FormatInt(p.Cardinality, 10), strconv.FormatInt(p.Size, 10)})
	}
	if err := emit(rows); err != nil {
		return nil, err
	}
	return plugins.Summary{
		"intersection_size": strconv.FormatInt(total, 10),
		"own_size":          strconv.FormatInt(req.OwnSize, 10),
		"peers":             strconv.Itoa(len(req.Peers)),
		"revealed":          "the querier learned how many identifiers it shares with each peer; each peer learned only the querier's set size",
	}, nil
}
