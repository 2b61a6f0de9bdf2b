package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"xnode/node/api"
	"xnode/testnet/synth"
)

// Outcome is a query's answer judged against the ground truth.
type Outcome struct {
	Answer string // what the query answered, short
	Want   string // what the ground truth says, short
	OK     bool
	Detail string // why it differs, when it does
}

// Check is one built-in query kind the demo runs and how it is judged.
type Check struct {
	Kind    string // the plugin: api.QueryRequest.Plugin
	Dataset string // the querier's (and the peer's) dataset
	// PeerDataset is the peers' dataset, if not Dataset.
	PeerDataset string
	// Params are the plugin's parameters.
	Params map[string]string
	// AllPeers runs one query with every other node; Compare then gets
	// peer "".
	AllPeers bool
	// MinNodes skips the check on a smaller testnet (a secure sum needs
	// three parties).
	MinNodes int
	// Compare judges a finished query of querier asking peer against the
	// ground truth. It must not trust the query beyond what it answered.
	Compare func(q api.Query, t *synth.Truth, querier, peer string) Outcome
}

// Checks are the queries the demo runs, in order, from the querier to each
// other node (or, for AllPeers, to all of them at once).
var Checks = []Check{
	{Kind: api.KindOverlap, Dataset: DatasetClients, Compare: CompareOverlap},
	{Kind: api.KindMatch, Dataset: DatasetClients, Compare: CompareMatch},
	{Kind: "risk-check", Dataset: DatasetClients, PeerDataset: DatasetRiskList, Compare: CompareRiskCheck},
	{Kind: "segment-stats", Dataset: DatasetClients, AllPeers: true, MinNodes: 3, Compare: CompareSegmentStats,
		Params: map[string]string{"group": "region", "sum": "amount", "over": "overdue_days:90", "k": "1"}},
}

// ExpectedRows is how many rows a demo of checks over n nodes reports.
func ExpectedRows(checks []Check, n int) int {
	rows := 0
	for _, c := range checks {
		if n < c.MinNodes {
			continue
		}
		if c.AllPeers {
			rows++
		} else {
			rows += n - 1
		}
	}
	return rows
}

// CompareRiskCheck judges a risk check: the rows for peer must be exactly
// the querier's clients on the peer's risk list, each with the peer's
// labels.
func CompareRiskCheck(q api.Query, t *synth.Truth, querier, peer string) Outcome {
	pt, err := t.Pair(querier, peer)
	if err != nil {
		return Outcome{Answer: "-", Want: "-", Detail: err.Error()}
	}
	out := Outcome{Answer: "-", Want: fmt.Sprintf("%d hits", len(pt.RiskHits))}
	if bad := notDone(q); bad != "" {
		out.Detail = bad
		return out
	}
	if q.Result == nil {
		out.Detail = "the query has no result table"
		return out
	}
	col := func(name string) int { return slices.Index(q.Result.Columns, name) }
	idc, pc, lc, dc, sc := col("id"), col("peer"), col("risk_level"), col("listed_date"), col("source")
	if min(idc, pc, lc, dc, sc) < 0 {
		out.Detail = fmt.Sprintf("the result columns %v lack id, peer or a label", q.Result.Columns)
		return out
	}
	want := map[string]synth.RiskEntry{}
	for _, e := range pt.RiskHits {
		want[e.ID] = e
	}
	var problems []string
	n := 0
	for _, row := range q.Result.Rows {
		if row[pc] != peer {
			continue
		}
		n++
		id, err := synth.CanonicalID(row[idc])
		if err != nil {
			problems = append(problems, fmt.Sprintf("returned %q, not a resident ID", row[idc]))
			continue
		}
		e, ok := want[id]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s is not on %s's list", id, peer))
			continue
		}
		if row[lc] != e.Level || row[dc] != e.ListedDate || row[sc] != e.Source {
			problems = append(problems, fmt.Sprintf("%s labelled %s/%s/%s, want %s/%s/%s", id, row[lc], row[dc], row[sc], e.Level, e.ListedDate, e.Source))
		}
		delete(want, id)
	}
	if len(want) > 0 {
		problems = append(problems, fmt.Sprintf("%d hits missing", len(want)))
	}
	out.Answer = fmt.Sprintf("%d hits", n)
	out.OK = len(problems) == 0
	out.Detail = strings.Join(problems, "; ")
	return out
}

// CompareSegmentStats judges a consortium-wide grouped sum: one row per
// region with the count of clients, the sum of amounts and the count
// overdue beyond 90 days, over every node's clients.
func CompareSegmentStats(q api.Query, t *synth.Truth, _, _ string) Outcome {
	out := Outcome{Answer: "-", Want: fmt.Sprintf("%d regions", len(t.Regions))}
	if bad := notDone(q); bad != "" {
		out.Detail = bad
		return out
	}
	if q.Result == nil || !slices.Equal(q.Result.Columns, []string{"group", "count", "sum", "over"}) {
		out.Detail = "the result is not a group/count/sum/over table"
		return out
	}
	got := map[string][]string{}
	for _, row := range q.Result.Rows {
		got[row[0]] = row
	}
	var problems []string
	for _, r := range t.Regions {
		want := []string{r.Region, strconv.Itoa(r.Clients), r.AmountSum.String(), strconv.Itoa(r.OverdueOver90)}
		if row := got[r.Region]; !slices.Equal(row, want) {
			problems = append(problems, fmt.Sprintf("%s: got %v, want %v", r.Region, row, want))
		}
	}
	out.Answer = fmt.Sprintf("%d regions", len(q.Result.Rows))
	out.OK = len(problems) == 0
	out.Detail = strings.Join(problems, "; ")
	return out
}

// CompareOverlap judges an overlap query: the cardinality for peer must be
// |querier's clients ∩ peer's clients|.
func CompareOverlap(q api.Query, t *synth.Truth, querier, peer string) Outcome {
	pt, err := t.Pair(querier, peer)
	if err != nil {
		return Outcome{Answer: "-", Want: "-", Detail: err.Error()}
	}
	out := Outcome{Answer: "-", Want: strconv.Itoa(pt.Overlap)}
	if bad := notDone(q); bad != "" {
		out.Detail = bad
		return out
	}
	got, ok := q.Summary.PerPeer[peer]
	if !ok {
		out.Detail = fmt.Sprintf("the summary has no count for %s", peer)
		return out
	}
	out.Answer = strconv.Itoa(got)
	out.OK = got == pt.Overlap
	if !out.OK {
		out.Detail = fmt.Sprintf("overlap %d, want %d", got, pt.Overlap)
	}
	return out
}

// CompareMatch judges a match query: the IDs it returned for peer,
// canonicalised, must be exactly the truth's intersection, each once.
func CompareMatch(q api.Query, t *synth.Truth, querier, peer string) Outcome {
	pt, err := t.Pair(querier, peer)
	if err != nil {
		return Outcome{Answer: "-", Want: "-", Detail: err.Error()}
	}
	out := Outcome{Answer: "-", Want: fmt.Sprintf("%d ids", len(pt.Intersection))}
	if bad := notDone(q); bad != "" {
		out.Detail = bad
		return out
	}
	if q.Result == nil {
		out.Detail = "the query has no result table"
		return out
	}
	idCol, peerCol := slices.Index(q.Result.Columns, "id"), slices.Index(q.Result.Columns, "peer")
	if idCol < 0 || peerCol < 0 {
		out.Detail = fmt.Sprintf("the result columns %v lack id or peer", q.Result.Columns)
		return out
	}
	got := map[string]int{}
	var problems []string
	n := 0
	for _, row := range q.Result.Rows {
		if len(row) <= max(idCol, peerCol) || row[peerCol] != peer {
			continue
		}
		n++
		id, err := synth.CanonicalID(row[idCol])
		if err != nil {
			problems = append(problems, fmt.Sprintf("returned %q, not a resident ID", row[idCol]))
			continue
		}
		got[id]++
	}
	out.Answer = fmt.Sprintf("%d ids", n)
	want := make(map[string]bool, len(pt.Intersection))
	var missing []string
	for _, id := range pt.Intersection {
		want[id] = true
		if got[id] == 0 {
			missing = append(missing, id)
		}
	}
	var extra, dup []string
	for id, k := range got {
		if !want[id] {
			extra = append(extra, id)
		}
		if k > 1 {
			dup = append(dup, id)
		}
	}
	slices.Sort(extra)
	slices.Sort(dup)
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("%d missing (first %s)", len(missing), missing[0]))
	}
	if len(extra) > 0 {
		problems = append(problems, fmt.Sprintf("%d not in the intersection (first %s)", len(extra), extra[0]))
	}
	if len(dup) > 0 {
		problems = append(problems, fmt.Sprintf("%d returned twice (first %s)", len(dup), dup[0]))
	}
	out.OK = len(problems) == 0
	out.Detail = strings.Join(problems, "; ")
	return out
}

func notDone(q api.Query) string {
	switch q.Status {
	case api.StatusDone:
		return ""
	case api.StatusFailed, api.StatusDenied, api.StatusExpired:
		return "the query " + q.Status + ": " + q.Error
	}
	return "the query is " + q.Status + ", not done"
}

// QueryFunc runs one query at the node called querier and returns its
// finished record (status done or failed).
type QueryFunc func(ctx context.Context, querier string, req api.QueryRequest) (api.Query, error)

// Row is one line of a demo report.
type Row struct {
	Kind    string        `json:"kind"`
	Querier string        `json:"querier"`
	Peer    string        `json:"peer"`
	QueryID string        `json:"query_id,omitempty"`
	Answer  string        `json:"answer"`
	Want    string        `json:"truth"`
	OK      bool          `json:"ok"`
	Detail  string        `json:"detail,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Report is the outcome of a demo.
type Report struct {
	Rows    []Row         `json:"rows"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// OK reports whether every row matches the ground truth. An empty report
// is not OK: a demo that checked nothing proves nothing.
func (r *Report) OK() bool {
	if len(r.Rows) == 0 {
		return false
	}
	for _, row := range r.Rows {
		if !row.OK {
			return false
		}
	}
	return true
}

// Failed returns the rows that differ from the ground truth.
func (r *Report) Failed() []Row {
	var out []Row
	for _, row := range r.Rows {
		if !row.OK {
			out = append(out, row)
		}
	}
	return out
}

// WriteTable prints the report as an aligned table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUERY\tQUERIER→PEER\tANSWER\tTRUTH\tOK\tTIME")
	for _, row := range r.Rows {
		ok := "ok"
		if !row.OK {
			ok = "WRONG: " + row.Detail
		}
		fmt.Fprintf(tw, "%s\t%s→%s\t%s\t%s\t%s\t%.1fs\n", row.Kind, row.Querier, row.Peer, row.Answer, row.Want, ok, row.Elapsed.Seconds())
	}
	return tw.Flush()
}

// DemoOptions configure Demo.
type DemoOptions struct {
	Truth *synth.Truth
	// Querier asks; the peers are every other node of Truth.Nodes.
	// Default: the first node.
	Querier string
	Checks  []Check   // default: Checks
	Run     QueryFunc // runs one query; see APIQueryFunc
	Logf    func(format string, args ...any)
}

// Demo runs every check from the querier to every other node and judges
// each answer against the truth. A query that fails is a wrong row, not an
// error: Demo returns an error only when ctx ends.
func Demo(ctx context.Context, o DemoOptions) (*Report, error) {
	if o.Truth == nil || o.Run == nil {
		return nil, errors.New("testnet: Demo needs Truth and Run")
	}
	if len(o.Truth.Nodes) < 2 {
		return nil, fmt.Errorf("the testnet has %d node; the demo needs at least 2", len(o.Truth.Nodes))
	}
	checks := o.Checks
	if checks == nil {
		checks = Checks
	}
	querier := o.Querier
	if querier == "" {
		querier = o.Truth.Nodes[0]
	}
	t0 := time.Now()
	rep := &Report{}
	var others []string
	for _, n := range o.Truth.Nodes {
		if n != querier {
			others = append(others, n)
		}
	}
	for _, c := range checks {
		if len(o.Truth.Nodes) < c.MinNodes {
			if o.Logf != nil {
				o.Logf("not running %s: it needs %d nodes, the testnet has %d", c.Kind, c.MinNodes, len(o.Truth.Nodes))
			}
			continue
		}
		targets := others
		if c.AllPeers {
			targets = []string{""}
		}
		for _, peer := range targets {
			peers := []string{peer}
			label := peer
			if peer == "" {
				peers, label = others, "all"
			}
			if o.Logf != nil {
				o.Logf("running %s %s→%s", c.Kind, querier, label)
			}
			start := time.Now()
			q, err := o.Run(ctx, querier, api.QueryRequest{Plugin: c.Kind, Dataset: c.Dataset, PeerDataset: c.PeerDataset, Params: c.Params, Peers: peers})
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			var out Outcome
			if err != nil {
				out = c.Compare(api.Query{Status: api.StatusFailed, Error: err.Error()}, o.Truth, querier, peer)
			} else {
				out = c.Compare(q, o.Truth, querier, peer)
			}
			rep.Rows = append(rep.Rows, Row{
				Kind: c.Kind, Querier: querier, Peer: label, QueryID: q.ID,
				Answer: out.Answer, Want: out.Want, OK: out.OK, Detail: out.Detail,
				Elapsed: time.Since(start),
			})
		}
	}
	rep.Elapsed = time.Since(t0)
	return rep, nil
}

// APIQueryFunc runs queries through the local API of the testnet's nodes:
// it submits the query to the querier and polls it until it is done or
// failed, for at most timeout.
func APIQueryFunc(st *State, timeout time.Duration) QueryFunc {
	return func(ctx context.Context, querier string, req api.QueryRequest) (api.Query, error) {
		n, err := st.Node(querier)
		if err != nil {
			return api.Query{}, err
		}
		c, err := api.ClientForDir(n.Dir)
		if err != nil {
			return api.Query{}, err
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		q, err := c.SubmitQuery(ctx, req)
		if err != nil {
			return api.Query{}, fmt.Errorf("failed to submit the query to %s: %w", querier, err)
		}
		id, wait := q.ID, 20*time.Millisecond
		for !api.Finished(q.Status) {
			select {
			case <-ctx.Done():
				return q, fmt.Errorf("query %s at %s did not finish: %w (see %s)", id, querier, ctx.Err(), n.Log)
			case <-time.After(wait):
			}
			wait = min(2*wait, 250*time.Millisecond)
			if q, err = c.GetQuery(ctx, id); err != nil {
				return q, fmt.Errorf("failed to read query %s at %s: %w", id, querier, err)
			}
		}
		return q, nil
	}
}
