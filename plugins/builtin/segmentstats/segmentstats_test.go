package segmentstats_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"xnode/plugins"
	"xnode/plugins/builtin/segmentstats"
	"xnode/plugins/plugintest"
)

func TestConformance(t *testing.T) {
	t.Run("ThreeColumns", func(t *testing.T) {
		plugintest.Run(t, segmentstats.New(), plugintest.Options{
			Params: map[string]string{"group": "region", "sum": "amount", "over": "overdue_days:90", "categories": "v0,v1,v2"},
			// [count, sum, over] for v0, v1, v2 and (other)
			Aggregate: []int64{100, 5000, 10, 4, 0, 0, 300, -7, 300, 2, 1, 0},
			Columns: map[string]plugins.Column{
				"amount":       {Type: plugins.ColumnDecimal, Scale: 2},
				"overdue_days": {Type: plugins.ColumnInteger},
			},
		})
	})
	t.Run("SumIsOver", func(t *testing.T) {
		plugintest.Run(t, segmentstats.New(), plugintest.Options{
			Params:    map[string]string{"group": "region", "sum": "amount", "over": "amount:1000.5", "k": "1", "categories": "v0"},
			Columns:   map[string]plugins.Column{"amount": {Type: plugins.ColumnDecimal, Scale: 1}},
			Aggregate: []int64{10, 1, 0, 30, 2, 1},
		})
	})
}

var base = map[string]string{"group": "region", "sum": "amount", "over": "overdue_days:90", "categories": "north,south"}

func with(kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "-" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name    string
		params  map[string]string
		cols    []string
		wantLen int
	}{
		{"three columns", base, []string{"region", "amount", "overdue_days"}, 9},
		{"sum is over", with("over", "amount:0", "categories", "a, b ,c"), []string{"region", "amount"}, 12},
		{"colon in column", with("over", "days:late:-1.5"), []string{"region", "amount", "days:late"}, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := segmentstats.New().Plan(context.Background(), tt.params)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.QuerierColumns, tt.cols) || !slices.Equal(p.ResponderColumns, tt.cols) || p.VectorLen != tt.wantLen ||
				!slices.Equal(p.ResultColumns, []string{"group", "count", "sum", "over"}) {
				t.Errorf("Plan(%v) = %+v, want columns %q on both sides, VectorLen %d, result group,count,sum,over", tt.params, p, tt.cols, tt.wantLen)
			}
		})
	}
}

func TestPlanRefuses(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		want   string
	}{
		{"no categories", with("categories", "-"), `parameter "categories" is empty`},
		{"blank categories", with("categories", " , "), `parameter "categories" is empty`},
		{"other", with("categories", "north,(other)"), `lists "(other)"`},
		{"twice", with("categories", "north,north"), `lists "north" twice`},
		{"over without colon", with("over", "overdue_days"), "want COLUMN:THRESHOLD"},
		{"over not a number", with("over", "overdue_days:ninety"), "want COLUMN:THRESHOLD"},
		{"over exponent", with("over", "overdue_days:1e3"), "want COLUMN:THRESHOLD"},
		{"over no column", with("over", ":90"), "want COLUMN:THRESHOLD"},
		{"k zero", with("k", "0"), `"k" is 0, want at least 1`},
		{"k not int", with("k", "five"), `"k" is "five"`},
		{"missing group", with("group", "-"), `missing required parameter "group"`},
		{"blank sum", with("sum", " "), `name a column each`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := segmentstats.New().Plan(context.Background(), tt.params)
			if !errors.Is(err, plugins.ErrInvalidParams) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Plan(%v) error = %v, want ErrInvalidParams saying %q", tt.params, err, tt.want)
			}
		})
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

func prepare(params map[string]string, cols []plugins.Column, data []plugins.Row) ([]plugins.Item, error) {
	var got []plugins.Item
	err := segmentstats.New().Prepare(context.Background(), plugins.PrepareRequest{Params: params, Role: plugins.Responder, Columns: cols},
		&rows{chunks: [][]plugins.Row{data[:1], data[1:]}}, func(items []plugins.Item) error {
			got = append(got, items...)
			return nil
		})
	return got, err
}

var cols = []plugins.Column{
	{Name: "region", Type: plugins.ColumnCategory},
	{Name: "amount", Type: plugins.ColumnDecimal, Scale: 2},
	{Name: "overdue_days", Type: plugins.ColumnInteger},
}

func row(pos int64, region string, amount int64, days int64, nulls ...int) plugins.Row {
	v := []plugins.Value{{Text: region}, {Int: amount}, {Int: days}}
	for _, i := range nulls {
		v[i] = plugins.Value{Null: true}
	}
	return plugins.Row{Pos: pos, Key: "k:x", Values: v}
}

func TestPrepare(t *testing.T) {
	data := []plugins.Row{
		row(0, "north", 1250, 91),         // 12.50, over 90
		row(1, "south", 0, 90, 1),         // null amount, not over
		row(3, "east", -305, 0, 2),        // other, -3.05, null days
		row(4, "", 7, 120, 0),             // null region: other
		row(9, "North", 1, 1000),          // case matters: other
		row(10, "south", -9_999_999, 400), // negative sum
	}
	got, err := prepare(base, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int64{
		{1, 1250, 1, 0, 0, 0, 0, 0, 0},
		{0, 0, 0, 1, 0, 0, 0, 0, 0},
		{0, 0, 0, 0, 0, 0, 1, -305, 0},
		{0, 0, 0, 0, 0, 0, 1, 7, 1},
		{0, 0, 0, 0, 0, 0, 1, 1, 1},
		{0, 0, 0, 1, -9_999_999, 1, 0, 0, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("Prepare emitted %d items, want %d", len(got), len(want))
	}
	for i, it := range got {
		if it.Pos != data[i].Pos || !slices.Equal(it.Values, want[i]) {
			t.Errorf("item %d = pos %d %v, want pos %d %v", i, it.Pos, it.Values, data[i].Pos, want[i])
		}
	}
}

// TestPrepareThresholdAtScale compares the over column at its scale.
func TestPrepareThresholdAtScale(t *testing.T) {
	tests := []struct {
		name      string
		over      string
		col       plugins.Column
		values    []int64
		wantOvers []int64
	}{
		{"decimal threshold, decimal(1) column", "d:90.05", plugins.Column{Type: plugins.ColumnDecimal, Scale: 1}, []int64{900, 901}, []int64{0, 1}},
		{"integer threshold, decimal(2) column", "d:90", plugins.Column{Type: plugins.ColumnDecimal, Scale: 2}, []int64{9000, 9001}, []int64{0, 1}},
		{"negative fractional threshold", "d:-0.5", plugins.Column{Type: plugins.ColumnInteger}, []int64{-1, 0}, []int64{0, 1}},
		{"threshold beyond int64 at scale", "d:999999999999999999", plugins.Column{Type: plugins.ColumnDecimal, Scale: 4}, []int64{1 << 62, 0}, []int64{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.col
			c.Name = "d"
			cs := []plugins.Column{{Name: "g", Type: plugins.ColumnCategory}, c}
			var data []plugins.Row
			for i, v := range tt.values {
				data = append(data, plugins.Row{Pos: int64(i), Values: []plugins.Value{{Text: "a"}, {Int: v}}})
			}
			got, err := prepare(map[string]string{"group": "g", "sum": "d", "over": tt.over, "categories": "a"}, cs, data)
			if err != nil {
				t.Fatal(err)
			}
			var overs []int64
			for _, it := range got {
				overs = append(overs, it.Values[2])
			}
			if !slices.Equal(overs, tt.wantOvers) {
				t.Errorf("over %s on %v at scale %d = %v, want %v", tt.over, tt.values, c.Scale, overs, tt.wantOvers)
			}
		})
	}
}

func TestPrepareRefusesNonNumericColumns(t *testing.T) {
	cs := []plugins.Column{{Name: "region", Type: plugins.ColumnCategory}, {Name: "amount", Type: plugins.ColumnLabel}, {Name: "overdue_days", Type: plugins.ColumnInteger}}
	_, err := prepare(base, cs, []plugins.Row{row(0, "north", 0, 0)})
	if err == nil || !strings.Contains(err.Error(), `column "amount" is a label column, want an integer or decimal column`) {
		t.Errorf("Prepare with a label sum column: error = %v, want one asking for an integer or decimal column", err)
	}
	_, err = prepare(base, cols[:2], []plugins.Row{row(0, "north", 0, 0)})
	if err == nil || !strings.Contains(err.Error(), `no column "overdue_days"`) {
		t.Errorf("Prepare without the over column: error = %v, want one naming it", err)
	}
}

func finalize(params map[string]string, agg []int64, contributors int) ([]plugins.ResultRow, plugins.Summary, error) {
	var got []plugins.ResultRow
	sum, err := segmentstats.New().Finalize(context.Background(), plugins.FinalizeRequest{
		Params: params, Columns: cols, Aggregate: agg, Contributors: contributors,
	}, nil, func(r []plugins.ResultRow) error {
		for _, row := range r {
			got = append(got, slices.Clone(row))
		}
		return nil
	})
	return got, sum, err
}

func TestFinalize(t *testing.T) {
	params := with("categories", "north,south,west")
	tests := []struct {
		name    string
		agg     []int64
		want    []plugins.ResultRow
		wantSum plugins.Summary
	}{
		{"suppression at k, other empty",
			[]int64{10, -12345, 3, 4, 999, 0, 5, 0, 5, 0, 0, 0},
			[]plugins.ResultRow{{"north", "10", "-123.45", "3"}, {"south", "suppressed", "suppressed", "suppressed"}, {"west", "5", "0.00", "5"}},
			plugins.Summary{"contributors": "3", "categories": "3", "suppressed": "1", "total_count": "15", "k": "5", "sum_scale": "2"}},
		{"other shown, empty category suppressed",
			[]int64{0, 0, 0, 6, 100, 1, 7, 7, 0, 8, 1 << 40, 8},
			[]plugins.ResultRow{{"north", "suppressed", "suppressed", "suppressed"}, {"south", "6", "1.00", "1"}, {"west", "7", "0.07", "0"}, {"(other)", "8", "10995116277.76", "8"}},
			plugins.Summary{"suppressed": "1", "total_count": "21"}},
		{"small other suppressed",
			[]int64{5, 1, 0, 5, 2, 0, 5, 3, 0, 2, 500, 1},
			[]plugins.ResultRow{{"north", "5", "0.01", "0"}, {"south", "5", "0.02", "0"}, {"west", "5", "0.03", "0"}, {"(other)", "suppressed", "suppressed", "suppressed"}},
			plugins.Summary{"suppressed": "1", "total_count": "15"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, sum, err := finalize(params, tt.agg, 3)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("Finalize(%v) rows = %q, want %q", tt.agg, got, tt.want)
			}
			for k, v := range tt.wantSum {
				if sum[k] != v {
					t.Errorf("Summary[%q] = %q, want %q (summary %v)", k, sum[k], v, sum)
				}
			}
		})
	}
}

func TestFinalizeK(t *testing.T) {
	agg := []int64{2, 10, 1, 0, 0, 0, 0, 0, 0}
	got, _, err := finalize(with("k", "2"), agg, 3)
	if want := (plugins.ResultRow{"north", "2", "0.10", "1"}); err != nil || len(got) != 2 || !slices.Equal(got[0], want) {
		t.Errorf("Finalize(k=2) = %q, %v; want first row %q", got, err, want)
	}
	got, _, err = finalize(with("k", "3"), agg, 3)
	if err != nil || len(got) != 2 || got[0][1] != segmentstats.Suppressed {
		t.Errorf("Finalize(k=3) = %q, %v; want north suppressed", got, err)
	}
}

func TestFinalizeRefusesBadAggregate(t *testing.T) {
	for _, tt := range []struct {
		name string
		agg  []int64
		want string
	}{
		{"short", []int64{1, 2, 3}, "the aggregate has 3 entries, want 9"},
		{"over above count", []int64{1, 0, 2, 0, 0, 0, 0, 0, 0}, `"north" has count 1 and over 2`},
		{"negative count", []int64{0, 0, 0, -1, 0, 0, 0, 0, 0}, `"south" has count -1`},
	} {
		_, _, err := finalize(base, tt.agg, 3)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Finalize(%s %v) error = %v, want %q", tt.name, tt.agg, err, tt.want)
		}
	}
}

// TestRoundTrip prepares three participants' rows, sums their vectors
// mod 2^64 as secure aggregation does, and finalizes the sum.
func TestRoundTrip(t *testing.T) {
	parties := [][]plugins.Row{
		{row(0, "north", 10_000, 100), row(1, "north", -20_050, 10), row(2, "south", 1, 0)},
		{row(0, "north", 5, 91), row(1, "north", -1, 0, 1), row(2, "east", 300, 300)},
		{row(0, "north", -1_000_000, 90), row(1, "south", 2, 91), row(2, "east", 1, 0, 2)},
	}
	params := with("k", "2")
	var agg []uint64
	for _, rs := range parties {
		items, err := prepare(params, cols, rs)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if agg == nil {
				agg = make([]uint64, len(it.Values))
			}
			for i, v := range it.Values {
				agg[i] += uint64(v) // wraps mod 2^64
			}
		}
	}
	signed := make([]int64, len(agg))
	for i, v := range agg {
		signed[i] = int64(v)
	}
	got, sum, err := finalize(params, signed, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []plugins.ResultRow{
		{"north", "5", "-10100.45", "2"}, // 100.00 - 200.50 + 0.05 - 10000.00 (null -0.01 counts 0)
		{"south", "2", "0.03", "1"},
		{"(other)", "2", "3.01", "1"},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Finalize of the aggregate %v = %q, want %q", signed, got, want)
	}
	if sum["total_count"] != "9" || sum["contributors"] != "3" || sum["suppressed"] != "0" {
		t.Errorf("Finalize summary = %v, want total_count 9, contributors 3, suppressed 0", sum)
	}
}
