package match_test

import (
	"context"
	"io"
	"slices"
	"testing"

	"xnode/plugins"
	"xnode/plugins/builtin/match"
	"xnode/plugins/plugintest"
)

func TestConformance(t *testing.T) {
	plugintest.Run(t, match.New(), plugintest.Options{
		Params:  map[string]string{"columns": "segment,balance"},
		Columns: map[string]plugins.Column{"balance": {Type: plugins.ColumnDecimal, Scale: 2}},
	})
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

func TestFinalizeRows(t *testing.T) {
	params := map[string]string{"columns": "balance, segment"}
	plan, err := match.New().Plan(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"peer", "id", "balance", "segment"}; !slices.Equal(plan.ResultColumns, want) {
		t.Errorf("Plan(%v).ResultColumns = %q, want %q", params, plan.ResultColumns, want)
	}
	cols := []plugins.Column{{Name: "segment", Type: plugins.ColumnCategory}, {Name: "balance", Type: plugins.ColumnDecimal, Scale: 2}}
	in := &matches{chunks: [][]plugins.Match{
		{{Peer: "bank-b", Row: plugins.Row{Pos: 3, Key: "cn_id:110", Values: []plugins.Value{{Text: "retail"}, {Int: -1205}}}}},
		{{Peer: "bank-c", Row: plugins.Row{Pos: 9, Key: "cn_id:220", Values: []plugins.Value{{Null: true}, {Int: 7}}}}},
	}}
	var got []plugins.ResultRow
	sum, err := match.New().Finalize(context.Background(), plugins.FinalizeRequest{Params: params, Columns: cols, OwnSize: 20,
		Peers: []plugins.PeerOutput{{Peer: "bank-b", Cardinality: 1}, {Peer: "bank-c", Cardinality: 1}}}, in,
		func(r []plugins.ResultRow) error {
			for _, row := range r {
				got = append(got, slices.Clone(row))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []plugins.ResultRow{{"bank-b", "110", "-12.05", "retail"}, {"bank-c", "220", "0.07", ""}}
	if len(got) != len(want) || !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) {
		t.Errorf("Finalize rows = %q, want %q", got, want)
	}
	if sum["matched_rows"] != "2" || sum["intersection_size"] != "2" {
		t.Errorf("Finalize summary = %v, want matched_rows 2, intersection_size 2", sum)
	}
}

func TestPlanRefusesUnknownParam(t *testing.T) {
	_, err := match.New().Plan(context.Background(), map[string]string{"colums": "a"})
	if err == nil {
		t.Fatal("Plan(colums=a) = nil error, want ErrInvalidParams")
	}
	t.Log(err)
}
