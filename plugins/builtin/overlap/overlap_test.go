package overlap_test

import (
	"context"
	"io"
	"slices"
	"testing"

	"xnode/plugins"
	"xnode/plugins/builtin/overlap"
	"xnode/plugins/plugintest"
)

func TestConformance(t *testing.T) {
	t.Run("NoFilter", func(t *testing.T) { plugintest.Run(t, overlap.New(), plugintest.Options{}) })
	t.Run("Filters", func(t *testing.T) {
		plugintest.Run(t, overlap.New(), plugintest.Options{
			Params: map[string]string{"filter": "segment:v1", "peer_filter": "region:v2"}})
	})
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

func TestPrepareFilters(t *testing.T) {
	cols := []plugins.Column{{Name: "segment", Type: plugins.ColumnCategory}}
	data := []plugins.Row{
		{Pos: 0, Key: "k:0", Values: []plugins.Value{{Text: "retail"}}},
		{Pos: 1, Key: "k:1", Values: []plugins.Value{{Text: "corporate"}}},
		{Pos: 2, Key: "k:2", Values: []plugins.Value{{Null: true}}},
		{Pos: 5, Key: "k:5", Values: []plugins.Value{{Text: "retail"}}},
	}
	tests := []struct {
		name   string
		params map[string]string
		role   plugins.Role
		cols   []plugins.Column
		want   []int64
	}{
		{"no filter", nil, plugins.Querier, nil, []int64{0, 1, 2, 5}},
		{"querier filter", map[string]string{"filter": "segment:retail"}, plugins.Querier, cols, []int64{0, 5}},
		{"querier filter ignored by responder", map[string]string{"filter": "segment:retail"}, plugins.Responder, nil, []int64{0, 1, 2, 5}},
		{"peer filter", map[string]string{"peer_filter": "segment:corporate"}, plugins.Responder, cols, []int64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int64
			err := overlap.New().Prepare(context.Background(), plugins.PrepareRequest{Params: tt.params, Role: tt.role, Columns: tt.cols},
				&rows{chunks: [][]plugins.Row{data[:2], data[2:]}}, func(items []plugins.Item) error {
					for _, it := range items {
						got = append(got, it.Pos)
					}
					return nil
				})
			if err != nil {
				t.Fatalf("Prepare() error = %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Prepare(%v, %s) positions = %v, want %v", tt.params, tt.role, got, tt.want)
			}
		})
	}
}

func TestPlanRefusesBadFilter(t *testing.T) {
	_, err := overlap.New().Plan(context.Background(), map[string]string{"filter": "no-colon"})
	if err == nil {
		t.Fatal("Plan(filter=no-colon) = nil error, want one asking for COLUMN:VALUE")
	}
	p, err := overlap.New().Plan(context.Background(), map[string]string{"filter": "segment:retail"})
	if err != nil || !slices.Equal(p.QuerierColumns, []string{"segment"}) || len(p.ResponderColumns) != 0 {
		t.Errorf("Plan(filter=segment:retail) = %+v, %v; want querier column segment only", p, err)
	}
}

func TestFinalize(t *testing.T) {
	var got []plugins.ResultRow
	sum, err := overlap.New().Finalize(context.Background(), plugins.FinalizeRequest{OwnSize: 10,
		Peers: []plugins.PeerOutput{{Peer: "a", Size: 7, Cardinality: 3}, {Peer: "b", Size: 9, Cardinality: 4}}},
		nil, func(r []plugins.ResultRow) error { got = append(got, r...); return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []plugins.ResultRow{{"a", "3", "7"}, {"b", "4", "9"}}
	if len(got) != 2 || !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) {
		t.Errorf("Finalize rows = %q, want %q", got, want)
	}
	if sum["intersection_size"] != "7" || sum["own_size"] != "10" {
		t.Errorf("Finalize summary = %v, want intersection_size 7, own_size 10", sum)
	}
}
