package queries_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"xnode/node/api"
	"xnode/node/audit"
	"xnode/node/queries"
	"xnode/plugins"
)

// riskList is a risk-list view of ids with two label columns.
func riskList(lo, hi int) *memView {
	ids := idRange(lo, hi)
	return &memView{
		ids:  ids,
		cols: []plugins.Column{{Name: "risk_level", Type: plugins.ColumnLabel}, {Name: "source", Type: plugins.ColumnLabel}},
		vals: func(pos int) []plugins.Value {
			return []plugins.Value{{Text: []string{"low", "medium", "high"}[pos%3]}, {Text: "court"}}
		},
	}
}

func TestRiskCheck(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 100)}})
	b := c.member("bureau", memDatasets{"risklist": riskList(50, 400), "tinylist": riskList(0, 100)})
	connect(t, a, b)
	check := func(t *testing.T) api.Query {
		got := submit(t, a, api.QueryRequest{Plugin: "risk-check", Dataset: "clients", Peers: []string{"bureau"}, PeerDataset: "risklist"})
		if got.Status != api.StatusDone {
			t.Fatalf("risk check = %s %q, want done", got.Status, got.Error)
		}
		wantCols := []string{"id", "peer", "risk_level", "source"}
		if !slices.Equal(got.Result.Columns, wantCols) {
			t.Fatalf("result columns %v, want %v", got.Result.Columns, wantCols)
		}
		if len(got.Result.Rows) != 50 || got.Summary.IntersectionSize != 50 {
			t.Fatalf("%d hits (size %d), want the 50 shared ids", len(got.Result.Rows), got.Summary.IntersectionSize)
		}
		for _, row := range got.Result.Rows {
			n, err := strconv.Atoi(row[0][len(row[0])-8:])
			if err != nil || n < 50 || n >= 100 {
				t.Errorf("hit %v is not one of the shared ids", row)
				continue
			}
			want := []string{"low", "medium", "high"}[(n-50)%3]
			if row[1] != "bureau" || row[2] != want || row[3] != "court" {
				t.Errorf("hit %v, want labels %s/court from bureau", row, want)
			}
		}
		return got
	}
	t.Run("first check fetches the encoding", func(t *testing.T) { check(t) })
	t.Run("second check uses the cache", func(t *testing.T) { check(t) })
	t.Run("evaluation budget", func(t *testing.T) {
		// The tiny list allows 150 evaluations a day: one check of 100 fits,
		// the second does not.
		q := api.QueryRequest{Plugin: "risk-check", Dataset: "clients", Peers: []string{"bureau"}, PeerDataset: "tinylist"}
		if got := submit(t, a, q); got.Status != api.StatusDone {
			t.Fatalf("first check against the tiny list = %s %q, want done", got.Status, got.Error)
		}
		got := submit(t, a, q)
		if got.Status != api.StatusFailed || !strings.Contains(got.Error, "budget") {
			t.Errorf("second check beyond the budget = %s %q, want failed naming the budget", got.Status, got.Error)
		}
	})
}

// accounts is a clients view with region, amount (2 decimals) and overdue
// days, generated from the position.
func accounts(lo, hi int) *memView {
	return &memView{
		ids: idRange(lo, hi),
		cols: []plugins.Column{
			{Name: "region", Type: plugins.ColumnCategory},
			{Name: "amount", Type: plugins.ColumnDecimal, Scale: 2},
			{Name: "overdue", Type: plugins.ColumnInteger},
		},
		vals: func(pos int) []plugins.Value {
			n := pos + lo
			return []plugins.Value{
				{Text: []string{"north", "south", "east"}[n%3]},
				{Int: int64(n*37%1000) * 100},
				{Int: int64(n * 13 % 120)},
			}
		},
	}
}

// wantStats computes the grouped figures directly from the views.
func wantStats(views ...*memView) map[string][3]int64 {
	out := map[string][3]int64{}
	for _, v := range views {
		for pos := range v.ids {
			vals := v.vals(pos)
			f := out[vals[0].Text]
			f[0]++
			f[1] += vals[1].Int
			if vals[2].Int > 90 {
				f[2]++
			}
			out[vals[0].Text] = f
		}
	}
	return out
}

func checkStats(t *testing.T, got api.Query, want map[string][3]int64) {
	t.Helper()
	if got.Status != api.StatusDone {
		t.Fatalf("segment stats = %s %q, want done", got.Status, got.Error)
	}
	for _, row := range got.Result.Rows {
		w, ok := want[row[0]]
		if !ok {
			if row[1] != "0" && row[0] != "(other)" {
				t.Errorf("unexpected category row %v", row)
			}
			continue
		}
		wantRow := []string{row[0], strconv.FormatInt(w[0], 10), fmt.Sprintf("%d.%02d", w[1]/100, w[1]%100), strconv.FormatInt(w[2], 10)}
		if !slices.Equal(row, wantRow) {
			t.Errorf("row %v, want %v", row, wantRow)
		}
		delete(want, row[0])
	}
	if len(want) > 0 {
		t.Errorf("categories missing from the result: %v", want)
	}
}

func TestSegmentStats(t *testing.T) {
	c := newConsortium(t)
	av, bv, dv, ev := accounts(0, 300), accounts(1000, 1400), accounts(5000, 5200), accounts(7000, 7100)
	a := c.member("bank-a", memDatasets{"clients": av, "quad": av})
	b := c.member("bank-b", memDatasets{"clients": bv, "quad": bv})
	d := c.member("bank-d", memDatasets{"clients": dv, "quad": dv})
	e := c.member("bank-e", memDatasets{"clients": ev})
	connect(t, a, b)
	connect(t, a, d)
	connect(t, a, e)
	params := map[string]string{"group": "region", "sum": "amount", "over": "overdue:90", "k": "1"}
	t.Run("three parties", func(t *testing.T) {
		got := submit(t, a, api.QueryRequest{Plugin: "segment-stats", Params: params, Dataset: "clients", Peers: []string{"bank-b", "bank-d"}})
		checkStats(t, got, wantStats(av, bv, dv))
		if got.Params["categories"] != "east,north,south" {
			t.Errorf("proposed categories %q, want the querier's own, sorted", got.Params["categories"])
		}
	})
	t.Run("two parties refused", func(t *testing.T) {
		if _, err := a.svc.Submit(t.Context(), api.QueryRequest{Plugin: "segment-stats", Params: params, Dataset: "clients", Peers: []string{"bank-b"}}); err == nil {
			t.Error("a secure sum with two parties was accepted")
		}
	})
	t.Run("policy wants more parties", func(t *testing.T) {
		got := submit(t, a, api.QueryRequest{Plugin: "segment-stats", Params: params, Dataset: "quad", Peers: []string{"bank-b", "bank-d"}})
		if got.Status != api.StatusDenied || !strings.Contains(got.Error, "four-party-sums") {
			t.Errorf("a 3-party sum under min_parties = 4 = %s %q, want denied naming the rule", got.Status, got.Error)
		}
	})
	// bank-d drops out as it prepares its input: the querier cannot reach
	// it for the sum.
	dropD := func(t *testing.T) {
		connect(t, a, d)
		var cut atomic.Bool
		dv.onRows = func() {
			if cut.CompareAndSwap(false, true) {
				_ = c.mn.DisconnectPeers(c.peers["bank-a"], c.peers["bank-d"])
			}
		}
		t.Cleanup(func() { dv.onRows = nil })
	}
	t.Run("a participant drops out of three", func(t *testing.T) {
		// The sum of the two left would be the querier's own figures plus
		// bank-b's, and so reveal bank-b's: the threshold is 3 of 3.
		dropD(t)
		got := submit(t, a, api.QueryRequest{Plugin: "segment-stats", Params: params, Dataset: "clients", Peers: []string{"bank-b", "bank-d"}})
		if got.Status != api.StatusFailed || got.Result != nil || len(got.Summary.Plugin) != 0 {
			t.Fatalf("3-party sum with a dropout = %s %q with %v, want failed with nothing revealed", got.Status, got.Error, got.Result)
		}
		for _, part := range []string{"too few participants stayed", "at least 3 of its 3 parties", "nothing was revealed", "submit the query again"} {
			if !strings.Contains(got.Error, part) {
				t.Errorf("error %q does not say %q", got.Error, part)
			}
		}
		if rec := wait(t, b, got.ID, api.Finished); rec.Status != api.StatusFailed {
			t.Errorf("bank-b's record = %s %q, want failed", rec.Status, rec.Error)
		}
		wait(t, d, got.ID, api.Finished)
	})
	t.Run("a participant drops out of four", func(t *testing.T) {
		// Three of four stay, the threshold: their exact sum comes back.
		dropD(t)
		got := submit(t, a, api.QueryRequest{Plugin: "segment-stats", Params: params, Dataset: "clients", Peers: []string{"bank-b", "bank-d", "bank-e"}})
		checkStats(t, got, wantStats(av, bv, ev))
		if n := got.Summary.Plugin["contributors"]; n != "3" {
			t.Errorf("contributors = %q, want 3 (bank-d dropped out)", n)
		}
		wait(t, d, got.ID, api.Finished)
	})
}

// TestRiskCheckAfterRestart restarts both services on their stores: the
// querier's cached encoding and the responder's published one come back
// from bbolt, and the answer is the same.
func TestRiskCheckAfterRestart(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 100)}})
	b := c.member("bureau", memDatasets{"risklist": riskList(50, 400)})
	connect(t, a, b)
	q := api.QueryRequest{Plugin: "risk-check", Dataset: "clients", Peers: []string{"bureau"}, PeerDataset: "risklist"}
	first := submit(t, a, q)
	if first.Status != api.StatusDone || len(first.Result.Rows) != 50 {
		t.Fatalf("first check = %s %q with %d rows", first.Status, first.Error, len(first.Result.Rows))
	}
	var stored int
	for _, m := range []*member{a, b} {
		if err := m.st.ForEachPrefix("oprf", nil, func(k, _ []byte) error {
			if strings.Contains(string(k), "/chunk/") {
				stored++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if stored < 2 {
		t.Fatalf("%d encoding chunks in the two stores, want the querier's cache and the responder's encoding", stored)
	}
	a2, b2 := a.restart(t), b.restart(t)
	connect(t, a2, b2)
	second := submit(t, a2, q)
	if second.Status != api.StatusDone || len(second.Result.Rows) != 50 {
		t.Fatalf("check after the restart = %s %q with %d rows, want the same 50 hits", second.Status, second.Error, len(second.Result.Rows))
	}
	entries, err := a2.audit.List(t.Context(), audit.Filter{QueryID: second.ID, Kind: "oprf-evaluations"})
	if err != nil || len(entries) != 1 || !strings.Contains(string(entries[0].Details), `"sync":"`) {
		t.Fatalf("audit of the second check: %v, %v", entries, err)
	}
	if strings.Contains(string(entries[0].Details), "full") {
		t.Errorf("the second check fetched the full encoding again: %s", entries[0].Details)
	}
}

// TestProposalExpires: a query a participant's operator never decides on
// ends expired at both nodes once the proposal's time is up.
func TestProposalExpires(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"review": {ids: idRange(0, 50)}})
	b := c.member("bank-b", memDatasets{"review": {ids: idRange(40, 90)}})
	connect(t, a, b)
	a = a.restart(t, func(cfg *queries.Config) { cfg.ProposalTTL = 2 * time.Second })
	q, err := a.svc.Submit(t.Context(), api.QueryRequest{Plugin: "overlap", Dataset: "review", Peers: []string{"bank-b"}})
	if err != nil {
		t.Fatal(err)
	}
	got := wait(t, a, q.ID, api.Finished)
	if got.Status != api.StatusExpired {
		t.Errorf("undecided query at the querier = %s %q, want expired", got.Status, got.Error)
	}
	if rec := wait(t, b, q.ID, api.Finished); rec.Status != api.StatusExpired {
		t.Errorf("undecided query at the participant = %s, want expired", rec.Status)
	}
	if _, err := b.svc.Approve(t.Context(), q.ID); err == nil {
		t.Error("an expired query was approved")
	}
}

// TestEpochRotation: once the responder's key epoch is over, the next risk
// check gets a new epoch's encoding in full (the cached one is refused) and
// the same answer.
func TestEpochRotation(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 100)}})
	b := c.member("bureau", memDatasets{"risklist": riskList(50, 400)})
	connect(t, a, b)
	q := api.QueryRequest{Plugin: "risk-check", Dataset: "clients", Peers: []string{"bureau"}, PeerDataset: "risklist"}
	epochs := func(id string) string {
		entries, err := a.audit.List(t.Context(), audit.Filter{QueryID: id, Kind: "oprf-evaluations"})
		if err != nil || len(entries) != 1 {
			t.Fatalf("evaluation audit of %s: %v, %v", id, entries, err)
		}
		return string(entries[0].Details)
	}
	first := submit(t, a, q)
	if first.Status != api.StatusDone || len(first.Result.Rows) != 50 {
		t.Fatalf("first check = %s %q", first.Status, first.Error)
	}
	b.restart(t, func(cfg *queries.Config) { cfg.EpochTTL = time.Nanosecond })
	second := submit(t, a, q)
	if second.Status != api.StatusDone || len(second.Result.Rows) != 50 {
		t.Fatalf("check after the rotation = %s %q", second.Status, second.Error)
	}
	d1, d2 := epochs(first.ID), epochs(second.ID)
	if !strings.Contains(d1, `"epoch":1,`) || !strings.Contains(d2, `"epoch":2,`) || !strings.Contains(d2, `"sync":"full"`) {
		t.Errorf("rotation not visible in the audit: before %s, after %s", d1, d2)
	}
}
