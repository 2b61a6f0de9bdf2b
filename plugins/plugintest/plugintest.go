// Package plugintest is the conformance suite every xnode query plugin must
// pass, in process or launched as a binary:
//
//	func TestConformance(t *testing.T) {
//		plugintest.Run(t, myplugin.New(), plugintest.Options{Params: …})
//	}
//
// It checks that the plugin describes itself validly; refuses unknown and
// ill-typed parameters with an error that wraps plugins.ErrInvalidParams
// and lists every accepted parameter; streams 100,000 rows through Prepare
// for each role (emitting items before it has read half the rows, in chunks
// of at most plugins.MaxChunk, ascending, at most one per row); produces
// result rows of exactly the planned columns (for a plan ending in
// AllColumns, the header its summary names) and a summary in Finalize;
// and stops Prepare and Finalize soon after the context is cancelled.
package plugintest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"xnode/plugins"
)

// Options tunes Run for one plugin.
type Options struct {
	// Params are valid parameters under which Prepare emits items for at
	// least some rows of the synthetic dataset (default: none).
	Params map[string]string
	// Columns gives the type of dataset columns the plan names; a column
	// not listed is a category column.
	Columns map[string]plugins.Column
	// Value returns a row's cell (default: category and label text
	// "v0".."v3" cycling by position; integer and decimal: the position).
	Value func(pos int64, c plugins.Column) plugins.Value
	// Label is the peer's label on every synthetic match (psi.labeled;
	// default "label").
	Label string
	// Aggregate is Finalize's aggregate (secagg.sum), of Plan.VectorLen
	// entries (default 100, 200, 300, …).
	Aggregate []int64
	// Rows is the synthetic dataset's size (default 100,000).
	Rows int
	// Timeout bounds each step (default 20 s).
	Timeout time.Duration
}

func (o *Options) defaults() {
	if o.Rows == 0 {
		o.Rows = 100_000
	}
	if o.Timeout == 0 {
		o.Timeout = 20 * time.Second
	}
	if o.Value == nil {
		o.Value = DefaultValue
	}
	if o.Label == "" {
		o.Label = "label"
	}
}

// DefaultValue is Options.Value's default.
func DefaultValue(pos int64, c plugins.Column) plugins.Value {
	switch c.Type {
	case plugins.ColumnInteger, plugins.ColumnDecimal:
		return plugins.Value{Int: pos}
	}
	return plugins.Value{Text: fmt.Sprintf("v%d", pos%4)}
}

// Key returns the synthetic dataset's namespaced identifier at pos.
func Key(pos int64) string { return fmt.Sprintf("test_id:%09d", pos) }

// Run runs the conformance suite against p as subtests of t.
func Run(t *testing.T, p plugins.Plugin, opts Options) {
	t.Helper()
	opts.defaults()
	ctx, cancel := context.WithTimeout(context.Background(), 4*opts.Timeout)
	defer cancel()

	d, err := p.Describe(ctx)
	if err != nil {
		t.Fatalf("Describe() error = %v", err)
	}
	t.Run("Describe", func(t *testing.T) {
		if err := plugins.ValidateDescriptor(d); err != nil {
			t.Errorf("ValidateDescriptor: %v", err)
		}
		again, err := p.Describe(ctx)
		if err != nil || !reflect.DeepEqual(d, again) {
			t.Errorf("Describe() twice: second = %+v, %v; want the first, %+v", again, err, d)
		}
	})
	plan, err := p.Plan(ctx, opts.Params)
	if err != nil {
		t.Fatalf("Plan(%v) error = %v, want valid options", opts.Params, err)
	}
	t.Run("Plan", func(t *testing.T) { checkPlan(t, d, plan) })
	t.Run("UnknownParam", func(t *testing.T) {
		params := with(opts.Params, "no_such_parameter_xyz", "1")
		_, err := p.Plan(ctx, params)
		checkInvalid(t, d, params, err)
	})
	t.Run("IllTypedParams", func(t *testing.T) {
		checked := 0
		for _, prm := range d.Params {
			if prm.Type == plugins.ParamString {
				continue
			}
			params := with(opts.Params, prm.Name, "not a valid value!")
			_, err := p.Plan(ctx, params)
			checkInvalid(t, d, params, err)
			checked++
		}
		for _, prm := range d.Params {
			if prm.Required {
				params := with(opts.Params, "", "")
				delete(params, prm.Name)
				_, err := p.Plan(ctx, params)
				checkInvalid(t, d, params, err)
				checked++
			}
		}
		if checked == 0 {
			t.Logf("plugin %s has no typed or required parameters to get wrong", d.Name)
		}
	})
	for _, role := range []plugins.Role{plugins.Querier, plugins.Responder} {
		t.Run("Prepare/"+string(role), func(t *testing.T) {
			checkPrepare(t, p, d, plan, role, opts)
		})
	}
	t.Run("Finalize", func(t *testing.T) { checkFinalize(t, p, d, plan, opts) })
	t.Run("CancelPrepare", func(t *testing.T) { checkCancelPrepare(t, p, plan, opts) })
	if d.Protocol == plugins.Intersection || d.Protocol == plugins.Labeled {
		t.Run("CancelFinalize", func(t *testing.T) { checkCancelFinalize(t, p, plan, opts) })
	}
}

func with(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	if k != "" {
		out[k] = v
	}
	return out
}

func checkPlan(t *testing.T, d plugins.Descriptor, plan plugins.Plan) {
	if !slices.Equal(plan.ResultColumns[:min(len(d.ResultColumns), len(plan.ResultColumns))], d.ResultColumns) {
		t.Errorf("Plan.ResultColumns = %q, want the descriptor's %q first", plan.ResultColumns, d.ResultColumns)
	}
	if len(plan.ResultColumns) == 0 {
		t.Errorf("Plan.ResultColumns is empty, want at least one column")
	}
	seen := map[string]bool{}
	for _, c := range plan.ResultColumns {
		if c == "" || seen[c] {
			t.Errorf("Plan.ResultColumns = %q: column %q empty or repeated", plan.ResultColumns, c)
		}
		seen[c] = true
	}
	declares := func(side plugins.Role) bool {
		return slices.ContainsFunc(d.Reads, func(u plugins.ColumnUse) bool { return u.Side == side || u.Side == plugins.Both })
	}
	if len(plan.QuerierColumns) > 0 && !declares(plugins.Querier) {
		t.Errorf("Plan reads querier columns %q but the descriptor declares no querier column use", plan.QuerierColumns)
	}
	if len(plan.ResponderColumns) > 0 && !declares(plugins.Responder) {
		t.Errorf("Plan reads responder columns %q but the descriptor declares no responder column use", plan.ResponderColumns)
	}
	if d.Protocol == plugins.Sum && plan.VectorLen < 1 {
		t.Errorf("Plan.VectorLen = %d for protocol %s, want at least 1", plan.VectorLen, d.Protocol)
	}
}

func checkInvalid(t *testing.T, d plugins.Descriptor, params map[string]string, err error) {
	t.Helper()
	if !errors.Is(err, plugins.ErrInvalidParams) {
		t.Errorf("Plan(%v) error = %v, want one wrapping ErrInvalidParams", params, err)
		return
	}
	for _, prm := range d.Params {
		if !strings.Contains(err.Error(), prm.Name) {
			t.Errorf("Plan(%v) error = %q, want it to list accepted parameter %q", params, err, prm.Name)
		}
	}
}

func columns(names []string, opts Options) []plugins.Column {
	out := make([]plugins.Column, len(names))
	for i, n := range names {
		c, ok := opts.Columns[n]
		if !ok {
			c = plugins.Column{Name: n, Type: plugins.ColumnCategory}
		}
		c.Name = n
		out[i] = c
	}
	return out
}

func makeRow(pos int64, cols []plugins.Column, opts Options, dst *plugins.Row) {
	dst.Pos, dst.Key = pos, Key(pos)
	dst.Values = dst.Values[:0]
	for _, c := range cols {
		dst.Values = append(dst.Values, opts.Value(pos, c))
	}
}

// gatedRows yields n synthetic rows in chunks of MaxChunk, reusing its
// buffer; past half of them it waits until the plugin has emitted an item.
type gatedRows struct {
	ctx     context.Context
	cols    []plugins.Column
	opts    Options
	n, next int64
	endless bool
	emitted chan struct{} // closed at the first emit
	wait    time.Duration
	buf     []plugins.Row
	read    atomic.Int64 // rows handed out, for emit's checks on another goroutine
}

func (r *gatedRows) Next() ([]plugins.Row, error) {
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	if !r.endless && r.next >= r.n {
		return nil, io.EOF
	}
	if r.emitted != nil && r.next >= r.n/2 {
		select {
		case <-r.emitted:
		case <-r.ctx.Done():
			return nil, r.ctx.Err()
		case <-time.After(r.wait):
			return nil, fmt.Errorf("the plugin read %d of %d rows without emitting an item; Prepare must emit as it reads", r.next, r.n)
		}
	}
	k := int64(plugins.MaxChunk)
	if !r.endless {
		k = min(k, r.n-r.next)
	}
	if len(r.buf) < int(k) {
		r.buf = make([]plugins.Row, k)
	}
	for i := range k {
		makeRow(r.next+i, r.cols, r.opts, &r.buf[i])
	}
	r.next += k
	r.read.Store(r.next)
	return r.buf[:k], nil
}

func roleColumns(plan plugins.Plan, role plugins.Role) []string {
	if role == plugins.Responder {
		return plan.ResponderColumns
	}
	return plan.QuerierColumns
}

func checkPrepare(t *testing.T, p plugins.Plugin, d plugins.Descriptor, plan plugins.Plan, role plugins.Role, opts Options) {
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	cols := columns(roleColumns(plan, role), opts)
	emitted := make(chan struct{})
	rows := &gatedRows{ctx: ctx, cols: cols, opts: opts, n: int64(opts.Rows), emitted: emitted, wait: opts.Timeout / 2}
	var (
		count    int
		last     int64 = -1
		problems []string
	)
	fail := func(format string, args ...any) {
		if len(problems) < 5 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	emit := func(items []plugins.Item) error {
		if count == 0 && len(items) > 0 {
			close(emitted)
		}
		if len(items) > plugins.MaxChunk {
			fail("emit got a chunk of %d items, want at most %d", len(items), plugins.MaxChunk)
		}
		for _, it := range items {
			if it.Pos <= last {
				fail("item at position %d after %d, want ascending positions, one item per row", it.Pos, last)
			}
			if read := rows.read.Load(); it.Pos >= read {
				fail("item at position %d, but only rows up to %d were read", it.Pos, read-1)
			}
			last = it.Pos
			if d.Protocol == plugins.Sum && len(it.Values) != plan.VectorLen {
				fail("item at position %d has %d values, want Plan.VectorLen = %d", it.Pos, len(it.Values), plan.VectorLen)
			}
		}
		count += len(items)
		return nil
	}
	err := p.Prepare(ctx, plugins.PrepareRequest{Params: opts.Params, Role: role, Columns: cols}, rows, emit)
	if err != nil {
		t.Fatalf("Prepare(%s, %d rows) error = %v", role, opts.Rows, err)
	}
	for _, s := range problems {
		t.Error(s)
	}
	if rows.next < rows.n {
		t.Errorf("Prepare(%s) returned after reading %d of %d rows, want all read", role, rows.next, rows.n)
	}
	if count == 0 {
		t.Errorf("Prepare(%s, %d rows) emitted no items; give Options.Params under which some rows take part", role, opts.Rows)
	}
	t.Logf("Prepare(%s): %d rows → %d items", role, opts.Rows, count)
}

// matchReader yields n matches spread over peers, in peer order.
type matchReader struct {
	ctx     context.Context
	cols    []plugins.Column
	opts    Options
	peers   []string
	n, next int64
	endless bool
	buf     []plugins.Match
}

func (r *matchReader) Next() ([]plugins.Match, error) {
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	if !r.endless && r.next >= r.n {
		return nil, io.EOF
	}
	k := int64(plugins.MaxChunk)
	if !r.endless {
		k = min(k, r.n-r.next)
	}
	if len(r.buf) < int(k) {
		r.buf = make([]plugins.Match, k)
	}
	per := max(r.n/int64(len(r.peers)), 1)
	for i := range k {
		i2 := r.next + i
		m := &r.buf[i]
		m.Peer = r.peers[min(i2/per, int64(len(r.peers)-1))]
		m.Label = r.opts.Label
		makeRow((i2*7)%max(r.n*2, 1), r.cols, r.opts, &m.Row) // any querier row
	}
	r.next += k
	return r.buf[:k], nil
}

func finalizeRequest(plan plugins.Plan, cols []plugins.Column, opts Options, n int64) plugins.FinalizeRequest {
	req := plugins.FinalizeRequest{
		Params: opts.Params, Columns: cols, OwnSize: int64(opts.Rows),
		Peers: []plugins.PeerOutput{
			{Peer: "peer-a", Size: 50_000, Cardinality: n / 2},
			{Peer: "peer-b", Size: 70_000, Cardinality: n - n/2},
		},
	}
	if plan.VectorLen > 0 {
		req.Aggregate = opts.Aggregate
		if req.Aggregate == nil {
			req.Aggregate = make([]int64, plan.VectorLen)
			for i := range req.Aggregate {
				req.Aggregate[i] = int64(100 * (i + 1))
			}
		}
		req.Contributors = 3
	}
	return req
}

func checkFinalize(t *testing.T, p plugins.Plugin, d plugins.Descriptor, plan plugins.Plan, opts Options) {
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	cols := columns(plan.QuerierColumns, opts)
	n := int64(10_000)
	var matches plugins.MatchReader = &matchReader{ctx: ctx, cols: cols, opts: opts, peers: []string{"peer-a", "peer-b"}, n: n}
	if d.Protocol != plugins.Intersection && d.Protocol != plugins.Labeled {
		matches = &matchReader{ctx: ctx, peers: []string{"none"}} // empty
	}
	rows := 0
	var problems []string
	// A plan whose result columns end with AllColumns names its header in
	// the summary; its rows are checked against that after Finalize.
	openHeader := plan.ResultColumns[len(plan.ResultColumns)-1] == AllColumns
	widths := map[int]bool{}
	emit := func(chunk []plugins.ResultRow) error {
		if len(chunk) > plugins.MaxChunk {
			problems = append(problems, fmt.Sprintf("emit got a chunk of %d result rows, want at most %d", len(chunk), plugins.MaxChunk))
		}
		for _, r := range chunk {
			widths[len(r)] = true
			if !openHeader && len(r) != len(plan.ResultColumns) && len(problems) < 5 {
				problems = append(problems, fmt.Sprintf("result row %q has %d cells, want %d for columns %q", r, len(r), len(plan.ResultColumns), plan.ResultColumns))
			}
		}
		rows += len(chunk)
		return nil
	}
	sum, err := p.Finalize(ctx, finalizeRequest(plan, cols, opts, n), matches, emit)
	if err != nil {
		t.Fatalf("Finalize() error = %v", err)
	}
	for _, s := range problems {
		t.Error(s)
	}
	if sum == nil {
		t.Errorf("Finalize() summary = nil, want a summary of what the query revealed")
	}
	if openHeader {
		checkOpenHeader(t, plan, sum, widths)
	}
	if rows == 0 {
		t.Errorf("Finalize() emitted no result rows for two peers sharing %d identifiers", n)
	}
	t.Logf("Finalize: %d result rows, summary %v", rows, sum)
}

// AllColumns as a plan's last result column says the plugin learns the
// rest of its result columns only from the protocol (risk-check reveals
// each peer's label columns): Finalize then names the whole header,
// comma-separated, in Summary[ResultColumnsKey], and the node replaces the
// plan's result columns with it. The node also expands AllColumns in a
// plan's ResponderColumns into every label column of the responder's
// dataset.
const AllColumns = "*"

// ResultColumnsKey is the summary entry naming the result header of a
// plan that ends with AllColumns.
const ResultColumnsKey = "result_columns"

func checkOpenHeader(t *testing.T, plan plugins.Plan, sum plugins.Summary, widths map[int]bool) {
	known := plan.ResultColumns[:len(plan.ResultColumns)-1]
	hdr := known
	if v := sum[ResultColumnsKey]; v != "" {
		hdr = strings.Split(v, ",")
	}
	if !slices.Equal(hdr[:min(len(known), len(hdr))], known) {
		t.Errorf("Summary[%q] = %q, want it to start with the plan's columns %q", ResultColumnsKey, sum[ResultColumnsKey], known)
	}
	seen := map[string]bool{}
	for _, c := range hdr {
		if c == "" || c == AllColumns || seen[c] {
			t.Errorf("Summary[%q] = %q: column %q empty, %q or repeated", ResultColumnsKey, sum[ResultColumnsKey], c, AllColumns)
		}
		seen[c] = true
	}
	for w := range widths {
		if w != len(hdr) {
			t.Errorf("Finalize emitted a row of %d cells, want %d for the header %q (Summary[%q])", w, len(hdr), hdr, ResultColumnsKey)
		}
	}
}

func checkCancelPrepare(t *testing.T, p plugins.Plugin, plan plugins.Plan, opts Options) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cols := columns(plan.QuerierColumns, opts)
	rows := &gatedRows{ctx: ctx, cols: cols, opts: opts, endless: true}
	emitted := false
	emit := func([]plugins.Item) error {
		if !emitted {
			emitted = true
			cancel()
		}
		return nil
	}
	time.AfterFunc(200*time.Millisecond, cancel) // in case nothing is emitted
	checkStops(t, "Prepare", opts, func() error {
		return p.Prepare(ctx, plugins.PrepareRequest{Params: opts.Params, Role: plugins.Querier, Columns: cols}, rows, emit)
	})
}

func checkCancelFinalize(t *testing.T, p plugins.Plugin, plan plugins.Plan, opts Options) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cols := columns(plan.QuerierColumns, opts)
	matches := &matchReader{ctx: ctx, cols: cols, opts: opts, peers: []string{"peer-a"}, n: 1 << 20, endless: true}
	time.AfterFunc(200*time.Millisecond, cancel)
	checkStops(t, "Finalize", opts, func() error {
		_, err := p.Finalize(ctx, finalizeRequest(plan, cols, opts, 1<<20), matches, func([]plugins.ResultRow) error { return nil })
		return err
	})
}

func checkStops(t *testing.T, method string, opts Options, call func() error) {
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- call() }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s over an endless input, cancelled: error = %v, want one wrapping context.Canceled", method, err)
		}
		t.Logf("%s stopped %v after the start", method, time.Since(start).Round(time.Millisecond))
	case <-time.After(opts.Timeout):
		t.Fatalf("%s over an endless input still runs %v after its context was cancelled", method, opts.Timeout)
	}
}
