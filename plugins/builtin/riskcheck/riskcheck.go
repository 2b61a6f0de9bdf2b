// Package riskcheck is the built-in risk-check plugin: over labeled PSI
// (psi.labeled), the querier learns which of its identifiers (say, loan
// applicants) are on each peer's risk list and the label columns the peer
// attached to them (risk level, listing date, source…). It learns nothing
// about the peer's other rows; a peer learns only how many identifiers the
// querier checked. cmd plugins/risk-check serves it as a plugin process.
//
// # Columns
//
// The querier reads no column besides the identifier. The responder reads
// the label columns named by the labels parameter, or, when labels is empty,
// every label column of its dataset: the plan then names the responder's
// columns as ["*"] (AllLabels) and the node expands "*" into the
// participant's label columns, in dataset order, before Prepare.
//
// # Label payload
//
// The responder attaches to each identifier a compact JSON object of the
// row's label columns, keys in PrepareRequest.Columns order, every value a
// string as the dataset file had it (decimals at their scale) or null for
// an empty cell, with no spaces:
//
//	{"risk_level":"high","listed_date":"2024-03-01","source":"court"}
//
// Non-ASCII column names and values stay UTF-8 (风险等级 is not escaped).
//
// # Result
//
// One row per hit: id (the querier's normalised identifier without its
// namespace, "110101199003071234" for "cn_id:110101199003071234"), peer,
// then the label values. With named labels the columns are fixed by the
// plan: ["id", "peer", label…]. With labels empty the plan's result columns
// are ["id", "peer", "*"]: the plugin learns the column names only from the
// payloads, so it names the full header in Summary["result_columns"]
// ("id,peer,risk_level,listed_date"), the union of every peer's label keys
// in the order first seen, and the node replaces the plan's columns with
// it; a hit whose peer did not send a column has an empty cell. This is how
// any plugin names columns it learns only from the protocol. In that mode
// Finalize holds the hits in memory until it knows the header (a risk
// check's hits are a small batch's); with named labels it streams.
//
// A label column called id or peer is shown as label_id or label_peer, a
// comma in a column name as an underscore, and a name already in the
// header gets a suffix _2, _3….
package riskcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"xnode/plugins"
)

// Version is the plugin's version.
const Version = "1.0.0"

// AllLabels in a plan's ResponderColumns and at the end of its
// ResultColumns stands for every label column of the responder's dataset;
// the node expands it (see the package doc).
const AllLabels = "*"

// ResultColumnsKey is the summary entry naming the full result header
// when the plan's result columns end with AllLabels.
const ResultColumnsKey = "result_columns"

var descriptor = plugins.Descriptor{
	Name:    "risk-check",
	Version: Version,
	Description: "Which of the querier's identifiers are on each peer's risk list, with the peer's label columns " +
		"(risk level, date, source…) for those hits only (labeled PSI).",
	Protocol: plugins.Labeled,
	Params: []plugins.Param{
		{Name: "labels", Type: plugins.ParamString,
			Description: "comma-separated label columns of each peer's dataset to reveal for hits, e.g. risk_level,listed_date; " +
				"empty: every label column of the peer's dataset, under the names it was imported with"},
	},
	Reads: []plugins.ColumnUse{
		{Param: "labels", Role: "label", Side: plugins.Responder,
			Description: "revealed to the querier for identifiers it holds; empty means all the responder's label columns"},
	},
	ResultColumns: []string{"id", "peer"},
}

// Plugin is the risk-check plugin. The zero value is ready.
type Plugin struct{}

var _ plugins.Plugin = Plugin{}

// New returns the plugin.
func New() Plugin { return Plugin{} }

// Describe implements plugins.Plugin.
func (Plugin) Describe(context.Context) (plugins.Descriptor, error) { return descriptor, nil }

// parse returns the named label columns; nil means all of them.
func parse(params map[string]string) ([]string, error) {
	p, err := plugins.CheckParams(descriptor, params)
	if err != nil {
		return nil, err
	}
	labels := plugins.ListParam(p["labels"])
	if len(labels) == 1 && labels[0] == AllLabels {
		return nil, nil
	}
	seen := map[string]bool{}
	for _, l := range labels {
		if l == AllLabels {
			return nil, fmt.Errorf("%w for plugin risk-check: parameter \"labels\" is %q: %q stands for every label column and cannot be mixed with names; %s",
				plugins.ErrInvalidParams, p["labels"], AllLabels, plugins.Accepted(descriptor))
		}
		if seen[l] {
			return nil, fmt.Errorf("%w for plugin risk-check: parameter \"labels\" names %q twice; %s",
				plugins.ErrInvalidParams, l, plugins.Accepted(descriptor))
		}
		seen[l] = true
	}
	return labels, nil
}

// resultName is a label column's name in a result header that already
// has the columns in header: id and peer become label_id and label_peer,
// commas (which would split Summary["result_columns"]) underscores, and a
// name taken gets a suffix _2, _3….
func resultName(header []string, label string) string {
	name := strings.ReplaceAll(label, ",", "_")
	if name == "id" || name == "peer" {
		name = "label_" + name
	}
	for n, base := 2, name; slices.Contains(header, name); n++ {
		name = base + "_" + strconv.Itoa(n)
	}
	return name
}

// Plan implements plugins.Plugin.
func (Plugin) Plan(_ context.Context, params map[string]string) (plugins.Plan, error) {
	labels, err := parse(params)
	if err != nil {
		return plugins.Plan{}, err
	}
	result := slices.Clone(descriptor.ResultColumns)
	if labels == nil {
		return plugins.Plan{ResponderColumns: []string{AllLabels}, ResultColumns: append(result, AllLabels)}, nil
	}
	for _, l := range labels {
		result = append(result, resultName(result, l))
	}
	return plugins.Plan{ResponderColumns: labels, ResultColumns: result}, nil
}

// Prepare implements plugins.Plugin: every row is one item; a responder's
// item carries the row's label columns as a JSON object (see the package
// doc).
func (Plugin) Prepare(ctx context.Context, req plugins.PrepareRequest, rows plugins.RowReader, emit func([]plugins.Item) error) error {
	labels, err := parse(req.Params)
	if err != nil {
		return err
	}
	responder := req.Role == plugins.Responder
	// idx are the columns of the payload, in payload order.
	var idx []int
	if responder {
		if labels == nil {
			idx = make([]int, len(req.Columns))
			for i := range idx {
				idx[i] = i
			}
		} else {
			idx = make([]int, len(labels))
			for i, l := range labels {
				if idx[i], err = plugins.ColumnIndex(req.Columns, l); err != nil {
					return fmt.Errorf("risk-check labels: %w", err)
				}
			}
		}
	}
	var buf []byte
	return plugins.PrepareRows(ctx, rows, emit, func(r plugins.Row) (plugins.Item, bool, error) {
		it := plugins.Item{Pos: r.Pos}
		if responder {
			buf = appendLabel(buf[:0], req.Columns, idx, r.Values)
			it.Label = string(buf)
		}
		return it, true, nil
	})
}

// appendLabel appends the JSON object of a row's columns idx.
func appendLabel(dst []byte, cols []plugins.Column, idx []int, vals []plugins.Value) []byte {
	dst = append(dst, '{')
	for n, i := range idx {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, cols[i].Name)
		dst = append(dst, ':')
		if vals[i].Null {
			dst = append(dst, "null"...)
		} else {
			dst = appendString(dst, cols[i].Format(vals[i]))
		}
	}
	return append(dst, '}')
}

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, other UTF-8 kept, invalid bytes as U+FFFD.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// label is one decoded payload: keys in payload order, values ("" for null).
type label struct {
	keys, values []string
}

// errMalformed marks a label payload that is not a JSON object of strings.
var errMalformed = errors.New("malformed risk-check label")

// parseLabel decodes a payload, keeping its key order.
func parseLabel(s string) (label, error) {
	bad := func(why string) (label, error) {
		show := s
		if len(show) > 80 {
			show = show[:80] + "…"
		}
		return label{}, fmt.Errorf("%w %q: %s; want a JSON object of strings such as {\"risk_level\":\"high\"} (is the peer's plugin risk-check?)",
			errMalformed, show, why)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return bad("it is not a JSON object")
	}
	var l label
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad(err.Error())
		}
		key := tok.(string) // object keys are strings
		if slices.Contains(l.keys, key) {
			return bad(fmt.Sprintf("column %q appears twice", key))
		}
		tok, err = dec.Token()
		if err != nil {
			return bad(err.Error())
		}
		var v string
		switch tv := tok.(type) {
		case string:
			v = tv
		case nil:
		default:
			return bad(fmt.Sprintf("column %q is %v, not a string or null", key, tok))
		}
		l.keys = append(l.keys, key)
		l.values = append(l.values, v)
	}
	if _, err := dec.Token(); err != nil {
		return bad(err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("it has data after the object")
	}
	return l, nil
}

// plainID strips the namespace from a namespaced identifier.
func plainID(key string) string {
	if _, plain, ok := strings.Cut(key, ":"); ok {
		return plain
	}
	return key
}

// Finalize implements plugins.Plugin: one row per hit, id, peer and the
// peer's labels; see the package doc for the header.
func (Plugin) Finalize(ctx context.Context, req plugins.FinalizeRequest, matches plugins.MatchReader, emit func([]plugins.ResultRow) error) (plugins.Summary, error) {
	labels, err := parse(req.Params)
	if err != nil {
		return nil, err
	}
	hits := make(map[string]int64, len(req.Peers))
	// With named labels, col maps a payload key to its result cell.
	col := make(map[string]int, len(labels))
	for i, l := range labels {
		col[l] = 2 + i
	}
	var (
		header = []string{"id", "peer"} // all labels: grows with new keys
		held   []plugins.ResultRow      // all labels: rows until the header is known
		out    = make([]plugins.ResultRow, 0, plugins.MaxChunk)
		total  int64
	)
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
			l, err := parseLabel(m.Label)
			if err != nil {
				return nil, fmt.Errorf("peer %s sent a %w", m.Peer, err)
			}
			var row plugins.ResultRow
			if labels != nil {
				row = make(plugins.ResultRow, 2+len(labels))
			} else {
				row = make(plugins.ResultRow, len(header), len(header)+len(l.keys))
			}
			row[0], row[1] = plainID(m.Row.Key), m.Peer
			for i, k := range l.keys {
				j, ok := col[k]
				switch {
				case ok:
				case labels != nil:
					return nil, fmt.Errorf("peer %s sent a %w: column %q, which the query's labels (%s) do not name",
						m.Peer, errMalformed, k, strings.Join(labels, ","))
				default:
					j = len(header)
					col[k] = j
					header = append(header, resultName(header, k))
				}
				for len(row) <= j {
					row = append(row, "")
				}
				row[j] = l.values[i]
			}
			hits[m.Peer]++
			total++
			if labels != nil {
				out = append(out, row)
			} else {
				held = append(held, row)
			}
		}
		if len(out) > 0 {
			if err := emit(out); err != nil {
				return nil, err
			}
		}
	}
	for start := 0; start < len(held); start += plugins.MaxChunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk := held[start:min(start+plugins.MaxChunk, len(held))]
		for i, r := range chunk {
			for len(r) < len(header) {
				r = append(r, "")
			}
			chunk[i] = r
		}
		if err := emit(chunk); err != nil {
			return nil, err
		}
	}
	sum := plugins.Summary{
		"hits":     strconv.FormatInt(total, 10),
		"own_size": strconv.FormatInt(req.OwnSize, 10),
		"peers":    strconv.Itoa(len(req.Peers)),
		"revealed": "the querier learned which of its identifiers are on each peer's list and the peer's labels for those only; " +
			"each peer learned only how many identifiers the querier checked",
	}
	for _, p := range req.Peers {
		sum["hits_"+p.Peer] = strconv.FormatInt(hits[p.Peer], 10)
	}
	for p, n := range hits {
		sum["hits_"+p] = strconv.FormatInt(n, 10)
	}
	if labels == nil {
		sum[ResultColumnsKey] = strings.Join(header, ",")
	}
	return sum, nil
}
