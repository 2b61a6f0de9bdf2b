package plugins_test

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"xnode/plugins"
)

var schema = plugins.Descriptor{
	Name: "demo", Version: "1.0.0", Protocol: plugins.Sum,
	Params: []plugins.Param{
		{Name: "groups", Type: plugins.ParamEnum, Enum: []string{"segment", "region"}, Required: true},
		{Name: "min_cell", Type: plugins.ParamInt, Default: "10"},
		{Name: "rate", Type: plugins.ParamDecimal},
		{Name: "verbose", Type: plugins.ParamBool},
		{Name: "note", Type: plugins.ParamString},
	},
	ResultColumns: []string{"group", "sum"},
}

func TestCheckParams(t *testing.T) {
	tests := []struct {
		name    string
		params  map[string]string
		want    map[string]string
		wantErr string
	}{
		{"defaults filled", map[string]string{"groups": "segment"}, map[string]string{"groups": "segment", "min_cell": "10"}, ""},
		{"all typed", map[string]string{"groups": "region", "min_cell": "-3", "rate": "0.05", "verbose": "true", "note": "x"},
			map[string]string{"groups": "region", "min_cell": "-3", "rate": "0.05", "verbose": "true", "note": "x"}, ""},
		{"unknown", map[string]string{"groups": "segment", "colour": "red"}, nil, `unknown parameter "colour"`},
		{"missing required", map[string]string{}, nil, `missing required parameter "groups"`},
		{"bad enum", map[string]string{"groups": "city"}, nil, "want one of segment, region"},
		{"bad int", map[string]string{"groups": "segment", "min_cell": "1.5"}, nil, "want an integer"},
		{"bad decimal", map[string]string{"groups": "segment", "rate": "5%"}, nil, "want a decimal number"},
		{"bad bool", map[string]string{"groups": "segment", "verbose": "yes"}, nil, "want true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := plugins.CheckParams(schema, tt.params)
			if tt.wantErr != "" {
				if !errors.Is(err, plugins.ErrInvalidParams) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("CheckParams(%v) error = %v, want ErrInvalidParams saying %q", tt.params, err, tt.wantErr)
				}
				for _, p := range schema.Params {
					if !strings.Contains(err.Error(), p.Name+" (") {
						t.Errorf("CheckParams(%v) error = %q, want it to list accepted parameter %q", tt.params, err, p.Name)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckParams(%v) error = %v", tt.params, err)
			}
			if len(got) != len(tt.want) {
				t.Errorf("CheckParams(%v) = %v, want %v", tt.params, got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("CheckParams(%v)[%q] = %q, want %q", tt.params, k, got[k], v)
				}
			}
		})
	}
}

func TestValidateDescriptor(t *testing.T) {
	if err := plugins.ValidateDescriptor(schema); err != nil {
		t.Fatalf("ValidateDescriptor(valid) = %v", err)
	}
	bad := []struct {
		name string
		edit func(*plugins.Descriptor)
		want string
	}{
		{"name", func(d *plugins.Descriptor) { d.Name = "Demo Plugin" }, "name"},
		{"protocol", func(d *plugins.Descriptor) { d.Protocol = "psi.magic" }, "protocol"},
		{"duplicate param", func(d *plugins.Descriptor) { d.Params = append(d.Params, d.Params[0]) }, "declared twice"},
		{"enum without values", func(d *plugins.Descriptor) { d.Params = []plugins.Param{{Name: "g", Type: plugins.ParamEnum}} }, "lists no values"},
		{"bad default", func(d *plugins.Descriptor) {
			d.Params = []plugins.Param{{Name: "n", Type: plugins.ParamInt, Default: "ten"}}
		}, "default"},
		{"unknown type", func(d *plugins.Descriptor) { d.Params = []plugins.Param{{Name: "n", Type: "float"}} }, "unknown type"},
		{"reads undeclared", func(d *plugins.Descriptor) {
			d.Reads = []plugins.ColumnUse{{Param: "cols", Role: "any", Side: plugins.Querier}}
		}, "undeclared parameter"},
		{"repeated result column", func(d *plugins.Descriptor) { d.ResultColumns = []string{"a", "a"} }, "repeated"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			d := schema
			d.Params = append([]plugins.Param{}, schema.Params...)
			tt.edit(&d)
			if err := plugins.ValidateDescriptor(d); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ValidateDescriptor(%s) = %v, want an error mentioning %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestColumnFormat(t *testing.T) {
	tests := []struct {
		c    plugins.Column
		v    plugins.Value
		want string
	}{
		{plugins.Column{Type: plugins.ColumnDecimal, Scale: 2}, plugins.Value{Int: -5}, "-0.05"},
		{plugins.Column{Type: plugins.ColumnDecimal, Scale: 2}, plugins.Value{Int: 12345}, "123.45"},
		{plugins.Column{Type: plugins.ColumnInteger}, plugins.Value{Int: 7}, "7"},
		{plugins.Column{Type: plugins.ColumnCategory}, plugins.Value{Text: "retail"}, "retail"},
		{plugins.Column{Type: plugins.ColumnLabel}, plugins.Value{Null: true, Text: "x"}, ""},
	}
	for _, tt := range tests {
		if got := tt.c.Format(tt.v); got != tt.want {
			t.Errorf("%+v.Format(%+v) = %q, want %q", tt.c, tt.v, got, tt.want)
		}
	}
}

type chunkRows struct{ chunks [][]plugins.Row }

func (r *chunkRows) Next() ([]plugins.Row, error) {
	if len(r.chunks) == 0 {
		return nil, io.EOF
	}
	c := r.chunks[0]
	r.chunks = r.chunks[1:]
	return c, nil
}

func TestPrepareRows(t *testing.T) {
	rows := func() *chunkRows {
		return &chunkRows{chunks: [][]plugins.Row{{{Pos: 0}, {Pos: 1}}, {{Pos: 2}}, {{Pos: 3}, {Pos: 4}}}}
	}
	var got [][]int64
	emit := func(items []plugins.Item) error {
		var pos []int64
		for _, it := range items {
			pos = append(pos, it.Pos)
		}
		got = append(got, pos)
		return nil
	}
	odd := func(r plugins.Row) (plugins.Item, bool, error) { return plugins.Item{Pos: r.Pos}, r.Pos%2 == 1, nil }
	if err := plugins.PrepareRows(context.Background(), rows(), emit, odd); err != nil {
		t.Fatal(err)
	}
	if want := [][]int64{{1}, {3}}; !reflect.DeepEqual(got, want) {
		t.Errorf("emitted %v, want %v (the chunk without a kept row emits nothing)", got, want)
	}
	boom := errors.New("boom")
	if err := plugins.PrepareRows(context.Background(), rows(), emit, func(plugins.Row) (plugins.Item, bool, error) {
		return plugins.Item{}, false, boom
	}); !errors.Is(err, boom) {
		t.Errorf("an item error came back as %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := plugins.PrepareRows(ctx, rows(), emit, odd); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled context gave %v", err)
	}
}
