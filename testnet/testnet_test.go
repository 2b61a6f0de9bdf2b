package testnet_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"xnode/node/api"
	"xnode/testnet"
	"xnode/testnet/synth"
)

func TestFreePorts(t *testing.T) {
	const n = 12
	ports, err := testnet.FreePorts(n)
	if err != nil {
		t.Fatalf("FreePorts(%d): %v", n, err)
	}
	if len(ports) != n {
		t.Fatalf("FreePorts(%d) returned %d ports", n, len(ports))
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || p > 65535 {
			t.Errorf("FreePorts returned %d, not a port", p)
		}
		if seen[p] {
			t.Errorf("FreePorts returned %d twice", p)
		}
		seen[p] = true
		// Released: the node can bind it over TCP and UDP.
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		tl, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("port %d from FreePorts is not free over TCP: %v", p, err)
			continue
		}
		ul, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Errorf("port %d from FreePorts is not free over UDP: %v", p, err)
		} else {
			ul.Close()
		}
		tl.Close()
	}
}

func sampleState(dir string) *testnet.State {
	return &testnet.State{
		Version:    testnet.StateVersion,
		Dir:        dir,
		Consortium: testnet.Consortium{Name: "testnet", ID: "xc-abc", Dir: filepath.Join(dir, "consortium")},
		Nodes: []testnet.NodeState{
			{Name: "node1", Dir: filepath.Join(dir, "node1"), PeerID: "12D3KooWA", P2PPort: 40001,
				P2PAddr: "/ip4/127.0.0.1/tcp/40001/p2p/12D3KooWA", API: "127.0.0.1:40002",
				Log: filepath.Join(dir, "node1", "node.log"), Pid: 4242, Status: testnet.StatusRunning},
			{Name: "node2", Dir: filepath.Join(dir, "node2"), PeerID: "12D3KooWB", P2PPort: 40003,
				P2PAddr: "/ip4/127.0.0.1/tcp/40003/p2p/12D3KooWB", API: "127.0.0.1:40004",
				Log: filepath.Join(dir, "node2", "node.log"), Status: testnet.StatusStopped},
		},
		Data: &testnet.DataState{Dir: filepath.Join(dir, "data"), Truth: filepath.Join(dir, "data", "truth.json"),
			Params: synth.Params{Seed: 9, Nodes: 2, Records: 100, Overlap: 0.25, RiskRecords: 10}, Imported: true},
		Policy:  testnet.PolicyNote,
		Started: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
	}
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := sampleState(dir)
	if err := want.Save(); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := testnet.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load after Save = %+v, want %+v", got, want)
	}
	n, err := got.Node("node2")
	if err != nil || n.API != "127.0.0.1:40004" {
		t.Errorf("Node(node2) = %+v, %v; want the node with API 127.0.0.1:40004", n, err)
	}
	if _, err := got.Node("node9"); err == nil {
		t.Error("Node(node9) succeeded, want an error")
	}

	noData := sampleState(dir)
	noData.Data = nil
	if err := noData.Save(); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if got, err := testnet.Load(dir); err != nil || got.Data != nil {
		t.Errorf("Load of a --no-data state = %+v, %v; want Data nil", got, err)
	}
}

func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"unknown field", `{"version":1,"dir":"/x","nodes":[],"policy":"","extra":1}`, "unknown field"},
		{"other version", `{"version":99,"dir":"/x","nodes":[]}`, "version 99"},
		{"not json", `nodes: 3`, "failed to decode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, testnet.StateFile), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := testnet.Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%s) error = %v, want one containing %q", tc.content, err, tc.want)
			}
		})
	}
	_, err := testnet.Load(t.TempDir())
	if !errors.Is(err, testnet.ErrNoTestnet) {
		t.Errorf("Load(empty dir) error = %v, want ErrNoTestnet", err)
	}
}

// truth generates a small consortium's ground truth.
func truth(t *testing.T, nodes int) *synth.Truth {
	t.Helper()
	c, err := synth.Generate(synth.Params{Seed: 3, Nodes: nodes, Records: 300, Overlap: 0.3, RiskRecords: 30})
	if err != nil {
		t.Fatal(err)
	}
	return c.Truth
}

func overlapQuery(peer string, n int) api.Query {
	return api.Query{Status: api.StatusDone, Summary: api.QuerySummary{IntersectionSize: n, PerPeer: map[string]int{peer: n}}}
}

func matchQuery(peer string, ids []string) api.Query {
	q := api.Query{Status: api.StatusDone, Result: &api.ResultTable{Columns: []string{"id", "peer"}, Rows: [][]string{}}}
	for _, id := range ids {
		q.Result.Rows = append(q.Result.Rows, []string{id, peer})
	}
	q.Summary.PerPeer = map[string]int{peer: len(ids)}
	return q
}

func riskQuery(peer string, hits []synth.RiskEntry) api.Query {
	q := api.Query{Status: api.StatusDone, Result: &api.ResultTable{Columns: []string{"id", "peer", "risk_level", "listed_date", "source"}, Rows: [][]string{}}}
	for _, e := range hits {
		q.Result.Rows = append(q.Result.Rows, []string{e.ID, peer, e.Level, e.ListedDate, e.Source})
	}
	return q
}

func statsQuery(regions []synth.RegionTruth) api.Query {
	q := api.Query{Status: api.StatusDone, Result: &api.ResultTable{Columns: []string{"group", "count", "sum", "over"}, Rows: [][]string{}}}
	for _, r := range regions {
		q.Result.Rows = append(q.Result.Rows, []string{r.Region, strconv.Itoa(r.Clients), r.AmountSum.String(), strconv.Itoa(r.OverdueOver90)})
	}
	return q
}

func TestCompareRiskAndStats(t *testing.T) {
	tr := truth(t, 3)
	pt, err := tr.Pair("node1", "node2")
	if err != nil || len(pt.RiskHits) == 0 {
		t.Fatalf("the sample truth has no risk hits for node1→node2 (%v); the test would prove nothing", err)
	}
	if out := testnet.CompareRiskCheck(riskQuery("node2", pt.RiskHits), tr, "node1", "node2"); !out.OK {
		t.Errorf("CompareRiskCheck(right) = %+v", out)
	}
	wrongLevel := riskQuery("node2", pt.RiskHits)
	wrongLevel.Result.Rows[0][2] = "none"
	missing := riskQuery("node2", pt.RiskHits[1:])
	for name, q := range map[string]api.Query{"wrong level": wrongLevel, "missing hit": missing} {
		if out := testnet.CompareRiskCheck(q, tr, "node1", "node2"); out.OK || out.Detail == "" {
			t.Errorf("CompareRiskCheck(%s) = %+v, want not OK with a reason", name, out)
		}
	}
	if out := testnet.CompareSegmentStats(statsQuery(tr.Regions), tr, "node1", ""); !out.OK {
		t.Errorf("CompareSegmentStats(right) = %+v", out)
	}
	off := statsQuery(tr.Regions)
	off.Result.Rows[0][1] += "1"
	if out := testnet.CompareSegmentStats(off, tr, "node1", ""); out.OK {
		t.Errorf("CompareSegmentStats(a wrong count) = %+v, want not OK", out)
	}
}

func TestCompareOverlap(t *testing.T) {
	tr := truth(t, 3)
	pt, err := tr.Pair("node1", "node2")
	if err != nil {
		t.Fatal(err)
	}
	if pt.Overlap == 0 {
		t.Fatal("the sample truth has no overlap; the test would prove nothing")
	}
	tests := []struct {
		name   string
		q      api.Query
		peer   string
		wantOK bool
	}{
		{"right", overlapQuery("node2", pt.Overlap), "node2", true},
		{"one too many", overlapQuery("node2", pt.Overlap+1), "node2", false},
		{"one too few", overlapQuery("node2", pt.Overlap-1), "node2", false},
		{"zero", overlapQuery("node2", 0), "node2", false},
		{"count of another peer", overlapQuery("node3", pt.Overlap), "node2", false},
		{"failed", api.Query{Status: api.StatusFailed, Error: "peer node2: refused"}, "node2", false},
		{"still running", api.Query{Status: api.StatusRunning}, "node2", false},
		{"unknown peer", overlapQuery("node7", 5), "node7", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := testnet.CompareOverlap(tc.q, tr, "node1", tc.peer)
			if out.OK != tc.wantOK {
				t.Errorf("CompareOverlap(%s) = %+v, want OK %v", tc.name, out, tc.wantOK)
			}
			if !out.OK && out.Detail == "" {
				t.Errorf("CompareOverlap(%s) is not OK but says no reason", tc.name)
			}
			if tc.name == "right" && out.Want != strconv.Itoa(pt.Overlap) {
				t.Errorf("CompareOverlap Want = %q, want %d", out.Want, pt.Overlap)
			}
		})
	}
}

func TestCompareMatch(t *testing.T) {
	tr := truth(t, 3)
	pt, err := tr.Pair("node1", "node3")
	if err != nil {
		t.Fatal(err)
	}
	ids := pt.Intersection
	if len(ids) < 3 {
		t.Fatalf("the sample intersection has %d ids; the test needs 3", len(ids))
	}
	// An ID as a node may display it: lower-case check character.
	lower := -1
	for i, id := range ids {
		if strings.HasSuffix(id, "X") {
			lower = i
			break
		}
	}
	legacy := append([]string(nil), ids...)
	if lower >= 0 {
		legacy[lower] = strings.ToLower(legacy[lower])
	}
	nonMember := "11010519491231002X" // valid, not generated with seed 3
	withOtherPeer := matchQuery("node3", ids)
	withOtherPeer.Result.Rows = append(withOtherPeer.Result.Rows, []string{nonMember, "node2"})

	tests := []struct {
		name   string
		q      api.Query
		wantOK bool
	}{
		{"right", matchQuery("node3", ids), true},
		{"right, legacy form", matchQuery("node3", legacy), true},
		{"rows of another peer are not counted", withOtherPeer, true},
		{"one missing", matchQuery("node3", ids[1:]), false},
		{"one extra", matchQuery("node3", append(append([]string(nil), ids...), nonMember)), false},
		{"one swapped", matchQuery("node3", append(append([]string(nil), ids[1:]...), nonMember)), false},
		{"one twice", matchQuery("node3", append(append([]string(nil), ids...), ids[0])), false},
		{"not an ID", matchQuery("node3", append(append([]string(nil), ids...), "hello")), false},
		{"empty", matchQuery("node3", nil), false},
		{"no table", api.Query{Status: api.StatusDone}, false},
		{"failed", api.Query{Status: api.StatusFailed, Error: "boom"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := testnet.CompareMatch(tc.q, tr, "node1", "node3")
			if out.OK != tc.wantOK {
				t.Errorf("CompareMatch(%s) = %+v, want OK %v", tc.name, out, tc.wantOK)
			}
			if !out.OK && out.Detail == "" {
				t.Errorf("CompareMatch(%s) is not OK but says no reason", tc.name)
			}
		})
	}
}

// truthfulRun answers every query from the truth itself, as a correct
// node would; corrupt, if set, changes the answer for one query.
func truthfulRun(tr *synth.Truth, corrupt func(req api.QueryRequest, q *api.Query)) testnet.QueryFunc {
	return func(_ context.Context, querier string, req api.QueryRequest) (api.Query, error) {
		req.Kind = req.Plugin
		peer := req.Peers[0]
		var q api.Query
		if req.Kind == "segment-stats" {
			q = statsQuery(tr.Regions)
		} else {
			pt, err := tr.Pair(querier, peer)
			if err != nil {
				return api.Query{}, err
			}
			switch req.Kind {
			case api.KindOverlap:
				q = overlapQuery(peer, pt.Overlap)
			case api.KindMatch:
				q = matchQuery(peer, pt.Intersection)
			case "risk-check":
				q = riskQuery(peer, pt.RiskHits)
			default:
				return api.Query{}, errors.New("unknown plugin " + req.Kind)
			}
		}
		q.ID, q.Kind = "q-"+req.Kind+"-"+peer, req.Kind
		if corrupt != nil {
			corrupt(req, &q)
		}
		return q, nil
	}
}

func TestDemo(t *testing.T) {
	tr := truth(t, 3)
	ctx := context.Background()

	rep, err := testnet.Demo(ctx, testnet.DemoOptions{Truth: tr, Run: truthfulRun(tr, nil)})
	if err != nil {
		t.Fatalf("Demo: %v", err)
	}
	if want := testnet.ExpectedRows(testnet.Checks, 3); len(rep.Rows) != want {
		t.Fatalf("Demo ran %d queries, want %d (every check from node1 to node2 and node3)", len(rep.Rows), want)
	}
	if !rep.OK() {
		t.Fatalf("Demo with right answers is not OK: %+v", rep.Failed())
	}
	for _, row := range rep.Rows {
		if row.Querier != "node1" || row.Peer == "node1" || row.Peer == "" {
			t.Errorf("row %+v: want node1 asking another node", row)
		}
	}

	// A wrong answer, however small, must fail the demo.
	wrongs := map[string]func(api.QueryRequest, *api.Query){
		"overlap off by one": func(req api.QueryRequest, q *api.Query) {
			if req.Kind == api.KindOverlap && req.Peers[0] == "node3" {
				q.Summary.PerPeer["node3"]++
			}
		},
		"match drops an ID": func(req api.QueryRequest, q *api.Query) {
			if req.Kind == api.KindMatch && req.Peers[0] == "node2" {
				q.Result.Rows = q.Result.Rows[1:]
			}
		},
		"query fails": func(req api.QueryRequest, q *api.Query) {
			if req.Kind == api.KindMatch && req.Peers[0] == "node3" {
				*q = api.Query{ID: q.ID, Status: api.StatusFailed, Error: "peer node3: timed out"}
			}
		},
	}
	for name, corrupt := range wrongs {
		t.Run(name, func(t *testing.T) {
			rep, err := testnet.Demo(ctx, testnet.DemoOptions{Truth: tr, Run: truthfulRun(tr, corrupt)})
			if err != nil {
				t.Fatalf("Demo: %v", err)
			}
			if rep.OK() {
				t.Fatalf("Demo with a wrong answer (%s) is OK; want it to fail", name)
			}
			if f := rep.Failed(); len(f) != 1 {
				t.Errorf("Demo failed %d rows, want exactly the corrupted one: %+v", len(f), f)
			}
			var b strings.Builder
			if err := rep.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "WRONG") {
				t.Errorf("the table does not flag the wrong row:\n%s", b.String())
			}
		})
	}

	t.Run("run error", func(t *testing.T) {
		run := func(context.Context, string, api.QueryRequest) (api.Query, error) {
			return api.Query{}, errors.New("node1 is not running")
		}
		rep, err := testnet.Demo(ctx, testnet.DemoOptions{Truth: tr, Run: run})
		if err != nil {
			t.Fatalf("Demo: %v", err)
		}
		if rep.OK() || len(rep.Failed()) != len(rep.Rows) {
			t.Errorf("Demo whose queries cannot run: OK %v, %d of %d failed; want all failed", rep.OK(), len(rep.Failed()), len(rep.Rows))
		}
	})
}

func TestReportEmptyIsNotOK(t *testing.T) {
	if (&testnet.Report{}).OK() {
		t.Error("an empty report is OK; a demo that checked nothing must fail")
	}
}

func TestUpRefuses(t *testing.T) {
	ctx := context.Background()
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    testnet.Options
		want string
	}{
		{"no dir", testnet.Options{Binary: "/bin/true", Nodes: 3, Records: 10}, "--dir"},
		{"no nodes", testnet.Options{Dir: t.TempDir(), Binary: "/bin/true", Nodes: 0, Records: 10}, "--nodes"},
		{"no records", testnet.Options{Dir: t.TempDir(), Binary: "/bin/true", Nodes: 2}, "--records"},
		{"bad overlap", testnet.Options{Dir: t.TempDir(), Binary: "/bin/true", Nodes: 2, Records: 10, Overlap: 1.5}, "--overlap"},
		{"foreign dir", testnet.Options{Dir: full, Binary: "/bin/true", Nodes: 2, Records: 10}, "not empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testnet.Up(ctx, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Up(%+v) error = %v, want one containing %q", tc.o, err, tc.want)
			}
		})
	}
}

// TestUpNodeDies starts a testnet whose "xnode" exits at once: Up must fail
// with the node's log, leave no process, mark the nodes stopped, and a
// second Up must restart the same testnet (same peer IDs).
func TestUpNodeDies(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(t.TempDir(), "xnode")
	script := "#!/bin/sh\necho \"fake node: cannot open the store\" >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	o := testnet.Options{Dir: dir, Binary: bin, Nodes: 2, NoData: true, ReadyTimeout: 20 * time.Second}
	_, err := testnet.Up(context.Background(), o)
	if err == nil {
		t.Fatal("Up with a node that exits succeeded")
	}
	for _, want := range []string{"exited while starting", "node.log", "fake node: cannot open the store"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Up error = %q, want it to contain %q", err, want)
		}
	}
	st, err := testnet.Load(dir)
	if err != nil {
		t.Fatalf("Load after a failed Up: %v", err)
	}
	for _, n := range st.Nodes {
		if n.Status != testnet.StatusStopped || n.Pid != 0 {
			t.Errorf("node %s after a failed Up: status %s pid %d, want stopped, 0", n.Name, n.Status, n.Pid)
		}
	}
	if live := st.Live(); len(live) != 0 {
		t.Errorf("Live() after a failed Up = %+v, want none", live)
	}
	_, err = testnet.Up(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "exited while starting") {
		t.Errorf("second Up error = %v, want the restart to reach the node start again", err)
	}
	st2, err := testnet.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range st.Nodes {
		if st2.Nodes[i].PeerID != st.Nodes[i].PeerID {
			t.Errorf("restart changed %s's peer ID from %s to %s; want the same keys", st.Nodes[i].Name, st.Nodes[i].PeerID, st2.Nodes[i].PeerID)
		}
	}
	o.Nodes = 3
	if _, err := testnet.Up(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--nodes 3") {
		t.Errorf("Up with another --nodes on an existing testnet: error %v, want one naming --nodes 3", err)
	}
	if _, err := testnet.Down(context.Background(), dir, nil); err != nil {
		t.Errorf("Down of a stopped testnet: %v", err)
	}
}
