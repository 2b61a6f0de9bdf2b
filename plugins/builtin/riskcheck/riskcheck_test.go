package riskcheck_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"xnode/plugins"
	"xnode/plugins/builtin/riskcheck"
	"xnode/plugins/plugintest"
)

func TestConformance(t *testing.T) {
	t.Run("AllLabels", func(t *testing.T) {
		plugintest.Run(t, riskcheck.New(), plugintest.Options{
			Label:   `{"risk_level":"high","listed_date":"2024-03-01"}`,
			Columns: map[string]plugins.Column{riskcheck.AllLabels: {Type: plugins.ColumnLabel}},
		})
	})
	t.Run("NamedLabels", func(t *testing.T) {
		plugintest.Run(t, riskcheck.New(), plugintest.Options{
			Params:  map[string]string{"labels": "risk_level,amount"},
			Label:   `{"risk_level":"high","amount":"12.50"}`,
			Columns: map[string]plugins.Column{"risk_level": {Type: plugins.ColumnLabel}, "amount": {Type: plugins.ColumnDecimal, Scale: 2}},
		})
	})
}

func TestAllLabelsIsTheConformanceConvention(t *testing.T) {
	if riskcheck.AllLabels != plugintest.AllColumns || riskcheck.ResultColumnsKey != plugintest.ResultColumnsKey {
		t.Errorf("riskcheck uses %q and %q, want plugintest's %q and %q",
			riskcheck.AllLabels, riskcheck.ResultColumnsKey, plugintest.AllColumns, plugintest.ResultColumnsKey)
	}
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name          string
		labels        string
		wantResponder []string
		wantResult    []string
	}{
		{"all", "", []string{"*"}, []string{"id", "peer", "*"}},
		{"star", " * ", []string{"*"}, []string{"id", "peer", "*"}},
		{"named", "risk_level, listed_date", []string{"risk_level", "listed_date"}, []string{"id", "peer", "risk_level", "listed_date"}},
		{"clashing names", "id,peer,label_id", []string{"id", "peer", "label_id"}, []string{"id", "peer", "label_id", "label_peer", "label_id_2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := riskcheck.New().Plan(context.Background(), map[string]string{"labels": tt.labels})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.QuerierColumns) != 0 || !slices.Equal(p.ResponderColumns, tt.wantResponder) || !slices.Equal(p.ResultColumns, tt.wantResult) {
				t.Errorf("Plan(labels=%q) = querier %q, responder %q, result %q; want none, %q, %q",
					tt.labels, p.QuerierColumns, p.ResponderColumns, p.ResultColumns, tt.wantResponder, tt.wantResult)
			}
		})
	}
	for _, bad := range []string{"risk,*", "risk,risk"} {
		_, err := riskcheck.New().Plan(context.Background(), map[string]string{"labels": bad})
		if !errors.Is(err, plugins.ErrInvalidParams) {
			t.Errorf("Plan(labels=%q) error = %v, want ErrInvalidParams", bad, err)
		}
	}
}

type rows struct{ chunks [][]plugins.Row }

func (r *rows) Next() ([]plugins.Row, error) {
	if len(r.chunks) == 0 {
		return nil, io.EOF
	}
	c := r.chunks[0]
	r.chunks = r.chunks[1:]
	return c, nil
}

func prepare(t *testing.T, params map[string]string, role plugins.Role, cols []plugins.Column, data []plugins.Row) []plugins.Item {
	t.Helper()
	var got []plugins.Item
	err := riskcheck.New().Prepare(context.Background(), plugins.PrepareRequest{Params: params, Role: role, Columns: cols},
		&rows{chunks: [][]plugins.Row{data[:1], data[1:]}}, func(items []plugins.Item) error {
			got = append(got, items...)
			return nil
		})
	if err != nil {
		t.Fatalf("Prepare(%v, %s) error = %v", params, role, err)
	}
	return got
}

var labelCols = []plugins.Column{
	{Name: "risk_level", Type: plugins.ColumnLabel},
	{Name: "listed_date", Type: plugins.ColumnLabel},
	{Name: "风险来源", Type: plugins.ColumnLabel},
	{Name: "exposure", Type: plugins.ColumnDecimal, Scale: 2},
}

var labelRows = []plugins.Row{
	{Pos: 0, Key: "cn_id:110", Values: []plugins.Value{{Text: "high"}, {Text: "2024-03-01"}, {Text: "法院"}, {Int: -1205}}},
	{Pos: 4, Key: "cn_id:220", Values: []plugins.Value{{Text: `say "hi"\` + "\n\x01<"}, {Null: true}, {Text: "court"}, {Int: 7}}},
}

func TestPrepareLabels(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		role   plugins.Role
		want   []plugins.Item
	}{
		{"querier", nil, plugins.Querier, []plugins.Item{{Pos: 0}, {Pos: 4}}},
		{"all columns in request order", nil, plugins.Responder, []plugins.Item{
			{Pos: 0, Label: `{"risk_level":"high","listed_date":"2024-03-01","风险来源":"法院","exposure":"-12.05"}`},
			{Pos: 4, Label: `{"risk_level":"say \"hi\"\\\n\u0001<","listed_date":null,"风险来源":"court","exposure":"0.07"}`},
		}},
		{"named in parameter order", map[string]string{"labels": "exposure,risk_level"}, plugins.Responder, []plugins.Item{
			{Pos: 0, Label: `{"exposure":"-12.05","risk_level":"high"}`},
			{Pos: 4, Label: `{"exposure":"0.07","risk_level":"say \"hi\"\\\n\u0001<"}`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := prepare(t, tt.params, tt.role, labelCols, labelRows)
			if !slices.EqualFunc(got, tt.want, func(a, b plugins.Item) bool {
				return a.Pos == b.Pos && a.Label == b.Label && a.Key == b.Key && a.Values == nil
			}) {
				t.Errorf("Prepare(%v, %s) =\n%+v\nwant\n%+v", tt.params, tt.role, got, tt.want)
			}
			for _, it := range got {
				if it.Label != "" && !json.Valid([]byte(it.Label)) {
					t.Errorf("label %q is not valid JSON", it.Label)
				}
			}
		})
	}
	_, err := prepareErr(map[string]string{"labels": "missing"}, labelCols)
	if err == nil || !strings.Contains(err.Error(), `no column "missing"`) {
		t.Errorf("Prepare(labels=missing) error = %v, want one naming the missing column", err)
	}
}

func prepareErr(params map[string]string, cols []plugins.Column) ([]plugins.Item, error) {
	var got []plugins.Item
	err := riskcheck.New().Prepare(context.Background(), plugins.PrepareRequest{Params: params, Role: plugins.Responder, Columns: cols},
		&rows{chunks: [][]plugins.Row{labelRows}}, func(items []plugins.Item) error { got = append(got, items...); return nil })
	return got, err
}

type matches struct{ chunks [][]plugins.Match }

func (m *matches) Next() ([]plugins.Match, error) {
	if len(m.chunks) == 0 {
		return nil, io.EOF
	}
	c := m.chunks[0]
	m.chunks = m.chunks[1:]
	return c, nil
}

func finalize(params map[string]string, chunks ...[]plugins.Match) ([]plugins.ResultRow, plugins.Summary, error) {
	var got []plugins.ResultRow
	sum, err := riskcheck.New().Finalize(context.Background(), plugins.FinalizeRequest{Params: params, OwnSize: 1000,
		Peers: []plugins.PeerOutput{{Peer: "bank-b", Size: 50, Cardinality: 2}, {Peer: "bank-c", Size: 60, Cardinality: 1}, {Peer: "bank-d", Size: 9}}},
		&matches{chunks: chunks}, func(r []plugins.ResultRow) error {
			for _, row := range r {
				got = append(got, slices.Clone(row))
			}
			return nil
		})
	return got, sum, err
}

// TestLabelRoundTrip prepares labels at a responder and finalizes them at
// the querier.
func TestLabelRoundTrip(t *testing.T) {
	items := prepare(t, nil, plugins.Responder, labelCols, labelRows)
	got, sum, err := finalize(nil, []plugins.Match{
		{Peer: "bank-b", Row: plugins.Row{Key: "cn_id:110"}, Label: items[0].Label},
		{Peer: "bank-b", Row: plugins.Row{Key: "cn_id:220"}, Label: items[1].Label},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []plugins.ResultRow{
		{"110", "bank-b", "high", "2024-03-01", "法院", "-12.05"},
		{"220", "bank-b", "say \"hi\"\\\n\x01<", "", "court", "0.07"},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Finalize rows = %q, want %q", got, want)
	}
	if h := sum["result_columns"]; h != "id,peer,risk_level,listed_date,风险来源,exposure" {
		t.Errorf("Summary[result_columns] = %q, want id,peer,risk_level,listed_date,风险来源,exposure", h)
	}
}

func TestFinalizeAllLabels(t *testing.T) {
	// bank-c imported other label columns than bank-b: the header is the
	// union in the order first seen.
	got, sum, err := finalize(nil,
		[]plugins.Match{
			{Peer: "bank-b", Row: plugins.Row{Key: "cn_id:110"}, Label: `{"risk_level":"high","listed_date":"2024-03-01"}`},
			{Peer: "bank-b", Row: plugins.Row{Key: "cn_id:330"}, Label: `{"risk_level":"low","listed_date":null}`},
		},
		[]plugins.Match{
			{Peer: "bank-c", Row: plugins.Row{Key: "cn_id:110"}, Label: `{"风险等级":"高","risk_level":"medium","id":"x,1"}`},
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []plugins.ResultRow{
		{"110", "bank-b", "high", "2024-03-01", "", ""},
		{"330", "bank-b", "low", "", "", ""},
		{"110", "bank-c", "medium", "", "高", "x,1"},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Finalize rows = %q, want %q", got, want)
	}
	wantSum := plugins.Summary{
		"result_columns": "id,peer,risk_level,listed_date,风险等级,label_id",
		"hits":           "3", "hits_bank-b": "2", "hits_bank-c": "1", "hits_bank-d": "0",
		"own_size": "1000", "peers": "3",
	}
	for k, v := range wantSum {
		if sum[k] != v {
			t.Errorf("Summary[%q] = %q, want %q (summary %v)", k, sum[k], v, sum)
		}
	}
}

func TestFinalizeNamedLabels(t *testing.T) {
	params := map[string]string{"labels": "risk_level,source"}
	got, sum, err := finalize(params, []plugins.Match{
		{Peer: "bank-b", Row: plugins.Row{Key: "cn_id:110"}, Label: `{"risk_level":"high","source":"court"}`},
		{Peer: "bank-c", Row: plugins.Row{Key: "plain"}, Label: `{"source":"fraud"}`},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []plugins.ResultRow{{"110", "bank-b", "high", "court"}, {"plain", "bank-c", "", "fraud"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Finalize(labels=risk_level,source) rows = %q, want %q", got, want)
	}
	if _, ok := sum["result_columns"]; ok || sum["hits"] != "2" || sum["hits_bank-b"] != "1" || sum["hits_bank-c"] != "1" {
		t.Errorf("Finalize(labels=risk_level,source) summary = %v, want hits 2 (1 each) and no result_columns", sum)
	}
}

func TestFinalizeRejectsMalformedLabels(t *testing.T) {
	for _, tt := range []struct{ name, params, label, want string }{
		{"not JSON", "", "high", "not a JSON object"},
		{"array", "", `["high"]`, "not a JSON object"},
		{"number", "", `{"risk_level":3}`, `column "risk_level" is 3`},
		{"nested", "", `{"risk_level":{"a":"b"}}`, `column "risk_level"`},
		{"duplicate", "", `{"a":"1","a":"2"}`, `column "a" appears twice`},
		{"trailing", "", `{"a":"1"}{}`, "data after the object"},
		{"truncated", "", `{"a":"1"`, "malformed"},
		{"unnamed column", "risk_level", `{"risk_level":"high","ssn":"1"}`, `column "ssn", which the query's labels (risk_level) do not name`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := finalize(map[string]string{"labels": tt.params}, []plugins.Match{{Peer: "bank-b", Row: plugins.Row{Key: "cn_id:1"}, Label: tt.label}})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "peer bank-b sent a malformed risk-check label") {
				t.Errorf("Finalize(label %s) error = %v, want one naming the peer and %q", tt.label, err, tt.want)
			}
		})
	}
}

func FuzzLabelRoundTrip(f *testing.F) {
	f.Add("high", "2024-03-01", "risk_level")
	f.Add("\"\\\x00\xff", "", "风险")
	f.Fuzz(func(t *testing.T, a, b, name string) {
		if name == "" || name == "b" || !utf8.ValidString(name) {
			return
		}
		cols := []plugins.Column{{Name: name, Type: plugins.ColumnLabel}, {Name: "b", Type: plugins.ColumnLabel}}
		data := []plugins.Row{{Key: "k:1", Values: []plugins.Value{{Text: a}, {Text: b}}}}
		items, err := prepareErrRows(cols, data)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := finalize(nil, []plugins.Match{{Peer: "p", Row: plugins.Row{Key: "k:1"}, Label: items[0].Label}})
		if err != nil {
			t.Fatalf("label %q of %q, %q: %v", items[0].Label, a, b, err)
		}
		want := plugins.ResultRow{"1", "p", string([]rune(a)), string([]rune(b))}
		if len(got) != 1 || !slices.Equal(got[0], want) {
			t.Errorf("round trip of %q, %q via %q = %q, want %q", a, b, items[0].Label, got, want)
		}
	})
}

func prepareErrRows(cols []plugins.Column, data []plugins.Row) ([]plugins.Item, error) {
	var got []plugins.Item
	err := riskcheck.New().Prepare(context.Background(), plugins.PrepareRequest{Role: plugins.Responder, Columns: cols},
		&rows{chunks: [][]plugins.Row{data}}, func(items []plugins.Item) error { got = append(got, items...); return nil })
	return got, err
}
