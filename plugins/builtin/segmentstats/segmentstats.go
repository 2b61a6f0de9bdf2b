// Package segmentstats is the built-in segment-stats plugin: over secure
// aggregation (secagg.sum), the querier learns, per category of a group
// column and summed over every participant (its own node included), the
// row count, the sum of a numeric column and the count of rows whose
// numeric column exceeds a threshold. No participant's own figures are
// revealed, and a category whose consortium count is below k is shown as
// "suppressed". cmd plugins/segment-stats serves it as a plugin process.
//
// # Categories
//
// The vector has one bucket per category of the categories parameter plus
// a last bucket "(other)" for rows whose group value is not in the list
// (or is empty). The querier proposes the list; when the analyst gives
// none, the querier's node fills it with the distinct values of the group
// column in the querier's own dataset, so no participant reveals which
// categories it has. Plan refuses an empty list. A category cannot contain
// a comma, and "(other)" is reserved.
//
// # Vector
//
// Plan.VectorLen is 3 × (len(categories) + 1); bucket b occupies entries
// 3b, 3b+1, 3b+2: [count, sum, over]. A row contributes 1 to its bucket's
// count, its sum column to the bucket's sum and 1 to its over slot if its
// over column is above the threshold; every other entry is 0. An empty
// sum cell counts as 0, an empty over cell as not over.
//
// # Fixed point
//
// Sums travel as integers: an integer column as it is, a decimal column as
// value × 10^Scale, and over thresholds are compared at the column's
// scale. Every participant must therefore import the sum column with the
// same scale (e.g. `amount:decimal(2)` everywhere); the querier formats the
// aggregate with its own column's scale. Negative values travel in two's
// complement mod 2^64; a total is exact while the sum of the absolute
// scaled values stays below 2^63 (at scale 2, 92 quadrillion units).
package segmentstats

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"xnode/plugins"
)

// Version is the plugin's version.
const Version = "1.0.0"

// Other is the bucket of rows whose category is not in the list.
const Other = "(other)"

// Suppressed is the cell of a category whose count is below k.
const Suppressed = "suppressed"

// DefaultK is the default small-cell threshold.
const DefaultK = 5

var descriptor = plugins.Descriptor{
	Name:    "segment-stats",
	Version: Version,
	Description: "Per category of a group column, over the whole consortium: row count, sum of a numeric column and " +
		"count of rows above a threshold, small cells suppressed (secure aggregation).",
	Protocol: plugins.Sum,
	Params: []plugins.Param{
		{Name: "group", Type: plugins.ParamString, Required: true,
			Description: "the category column to group by, e.g. region"},
		{Name: "sum", Type: plugins.ParamString, Required: true,
			Description: "the integer or decimal column to sum per category, e.g. amount; every participant must import it with the same decimal scale"},
		{Name: "over", Type: plugins.ParamString, Required: true,
			Description: "COLUMN:THRESHOLD, e.g. overdue_days:90; counts rows whose integer or decimal COLUMN is above THRESHOLD"},
		{Name: "k", Type: plugins.ParamInt, Default: strconv.Itoa(DefaultK),
			Description: "small-cell suppression: a category with fewer rows than k in total shows \"suppressed\" instead of its figures"},
		{Name: "categories", Type: plugins.ParamString,
			Description: "comma-separated categories of the group column, one result row each (rows of other categories go to \"(other)\"); " +
				"the querier's node fills it from its own dataset when none is given"},
	},
	Reads: []plugins.ColumnUse{
		{Param: "group", Role: "category", Side: plugins.Both, Description: "grouped by"},
		{Param: "sum", Role: "value", Side: plugins.Both, Description: "summed per category"},
		{Param: "over", Role: "value", Side: plugins.Both, Description: "the column before the colon, compared with the threshold"},
	},
	ResultColumns: []string{"group", "count", "sum", "over"},
}

// Plugin is the segment-stats plugin. The zero value is ready.
type Plugin struct{}

var _ plugins.Plugin = Plugin{}

// New returns the plugin.
func New() Plugin { return Plugin{} }

// Describe implements plugins.Plugin.
func (Plugin) Describe(context.Context) (plugins.Descriptor, error) { return descriptor, nil }

// thresholdRE is a decimal number, as plugins.ParamDecimal accepts.
var thresholdRE = regexp.MustCompile(`^-?[0-9]{1,18}(\.[0-9]{1,18})?$`)

type plan struct {
	group, sum, over string
	threshold        string // decimal text
	k                int64
	categories       []string
}

// vectorLen is the length of every item's Values.
func (p plan) vectorLen() int { return 3 * (len(p.categories) + 1) }

// columns are the dataset columns both sides read.
func (p plan) columns() []string {
	var out []string
	for _, c := range []string{p.group, p.sum, p.over} {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w for plugin segment-stats: %s; %s", plugins.ErrInvalidParams, fmt.Sprintf(format, args...), plugins.Accepted(descriptor))
}

func parse(params map[string]string) (plan, error) {
	v, err := plugins.CheckParams(descriptor, params)
	if err != nil {
		return plan{}, err
	}
	p := plan{group: strings.TrimSpace(v["group"]), sum: strings.TrimSpace(v["sum"])}
	if p.group == "" || p.sum == "" {
		return plan{}, invalid("parameters \"group\" and \"sum\" name a column each, got group=%q sum=%q", v["group"], v["sum"])
	}
	// The threshold has no colon; the column name might.
	i := strings.LastIndex(v["over"], ":")
	if i >= 0 {
		p.over, p.threshold = strings.TrimSpace(v["over"][:i]), strings.TrimSpace(v["over"][i+1:])
	}
	if i < 0 || p.over == "" || !thresholdRE.MatchString(p.threshold) {
		return plan{}, invalid("parameter \"over\" is %q, want COLUMN:THRESHOLD such as overdue_days:90", v["over"])
	}
	if p.k, _ = strconv.ParseInt(v["k"], 10, 64); p.k < 1 {
		return plan{}, invalid("parameter \"k\" is %s, want at least 1", v["k"])
	}
	p.categories = plugins.ListParam(v["categories"])
	if len(p.categories) == 0 {
		return plan{}, invalid("parameter \"categories\" is empty: list the categories of %q to report, comma-separated "+
			"(the querier's node fills it from its own dataset when the analyst gives none)", p.group)
	}
	seen := make(map[string]bool, len(p.categories))
	for _, c := range p.categories {
		if c == Other {
			return plan{}, invalid("parameter \"categories\" lists %q, which names the bucket of unlisted categories", Other)
		}
		if seen[c] {
			return plan{}, invalid("parameter \"categories\" lists %q twice", c)
		}
		seen[c] = true
	}
	return p, nil
}

// Plan implements plugins.Plugin.
func (Plugin) Plan(_ context.Context, params map[string]string) (plugins.Plan, error) {
	p, err := parse(params)
	if err != nil {
		return plugins.Plan{}, err
	}
	return plugins.Plan{
		QuerierColumns:   p.columns(),
		ResponderColumns: p.columns(),
		ResultColumns:    slices.Clone(descriptor.ResultColumns),
		VectorLen:        p.vectorLen(),
	}, nil
}

// numeric returns the index of the integer or decimal column name.
func numeric(cols []plugins.Column, param, name string) (int, error) {
	i, err := plugins.ColumnIndex(cols, name)
	if err != nil {
		return -1, fmt.Errorf("segment-stats %s: %w", param, err)
	}
	if t := cols[i].Type; t != plugins.ColumnInteger && t != plugins.ColumnDecimal {
		return -1, fmt.Errorf("segment-stats %s: column %q is a %s column, want an integer or decimal column", param, name, t)
	}
	return i, nil
}

// scaledFloor returns floor(threshold × 10^scale), clamped to int64:
// at that scale, a value is above the threshold exactly when its Int is
// above the result.
func scaledFloor(threshold string, scale int) int64 {
	r, _ := new(big.Rat).SetString(threshold) // checked by parse
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(scale, 0))), nil)))
	f := new(big.Int).Div(r.Num(), r.Denom()) // Euclidean: floor for a positive divisor
	switch {
	case f.IsInt64():
		return f.Int64()
	case f.Sign() > 0:
		return math.MaxInt64
	default:
		return math.MinInt64
	}
}

// Prepare implements plugins.Plugin: every row is one item whose Values
// is its contribution (see the package doc).
func (Plugin) Prepare(ctx context.Context, req plugins.PrepareRequest, rows plugins.RowReader, emit func([]plugins.Item) error) error {
	p, err := parse(req.Params)
	if err != nil {
		return err
	}
	gi, err := plugins.ColumnIndex(req.Columns, p.group)
	if err != nil {
		return fmt.Errorf("segment-stats group: %w", err)
	}
	si, err := numeric(req.Columns, "sum", p.sum)
	if err != nil {
		return err
	}
	oi, err := numeric(req.Columns, "over", p.over)
	if err != nil {
		return err
	}
	thr := scaledFloor(p.threshold, req.Columns[oi].Scale)
	bucket := make(map[string]int, len(p.categories))
	for b, c := range p.categories {
		bucket[c] = b
	}
	other, n := len(p.categories), p.vectorLen()
	return plugins.PrepareRows(ctx, rows, emit, func(r plugins.Row) (plugins.Item, bool, error) {
		// A fresh vector per row: the host may keep it.
		v := make([]int64, n)
		b := other
		if g := r.Values[gi]; !g.Null {
			if j, ok := bucket[req.Columns[gi].Format(g)]; ok {
				b = j
			}
		}
		v[3*b] = 1
		if s := r.Values[si]; !s.Null {
			v[3*b+1] = s.Int
		}
		if o := r.Values[oi]; !o.Null && o.Int > thr {
			v[3*b+2] = 1
		}
		return plugins.Item{Pos: r.Pos, Values: v}, true, nil
	})
}

// Finalize implements plugins.Plugin: one row per category, and one for
// "(other)" if any row fell there; a category whose count is below k shows
// "suppressed" in every figure.
func (Plugin) Finalize(ctx context.Context, req plugins.FinalizeRequest, _ plugins.MatchReader, emit func([]plugins.ResultRow) error) (plugins.Summary, error) {
	p, err := parse(req.Params)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(req.Aggregate) != p.vectorLen() {
		return nil, fmt.Errorf("segment-stats: the aggregate has %d entries, want %d (3 per category of %d, and (other)); did every participant plan the same categories?",
			len(req.Aggregate), p.vectorLen(), len(p.categories))
	}
	// The querier's sum column formats the totals at its scale (an
	// integer when the host passes no columns; summary sum_scale says).
	sumCol := plugins.Column{Name: p.sum, Type: plugins.ColumnInteger}
	if i, err := plugins.ColumnIndex(req.Columns, p.sum); err == nil {
		sumCol = req.Columns[i]
	}
	var (
		out               = make([]plugins.ResultRow, 0, len(p.categories)+1)
		suppressed, total int64
	)
	for b, name := range append(slices.Clone(p.categories), Other) {
		count, sum, over := req.Aggregate[3*b], req.Aggregate[3*b+1], req.Aggregate[3*b+2]
		if count < 0 || over < 0 || over > count {
			return nil, fmt.Errorf("segment-stats: the aggregate of %q has count %d and over %d, which no honest participants give", name, count, over)
		}
		if name == Other && count == 0 {
			continue
		}
		if count < p.k {
			suppressed++
			out = append(out, plugins.ResultRow{name, Suppressed, Suppressed, Suppressed})
			continue
		}
		total += count
		out = append(out, plugins.ResultRow{name, strconv.FormatInt(count, 10), sumCol.Format(plugins.Value{Int: sum}), strconv.FormatInt(over, 10)})
	}
	for start := 0; start < len(out); start += plugins.MaxChunk {
		if err := emit(out[start:min(start+plugins.MaxChunk, len(out))]); err != nil {
			return nil, err
		}
	}
	return plugins.Summary{
		"contributors": strconv.Itoa(req.Contributors),
		"categories":   strconv.Itoa(len(p.categories)),
		"suppressed":   strconv.FormatInt(suppressed, 10),
		"total_count":  strconv.FormatInt(total, 10),
		"k":            strconv.FormatInt(p.k, 10),
		"sum_scale":    strconv.Itoa(max(sumCol.Scale, 0)),
		"revealed": "the querier learned, per category, the consortium's row count, sum and count over the threshold " +
			"(categories below k suppressed); no participant's own figures",
	}, nil
}
