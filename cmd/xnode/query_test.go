package main

import (
	"strings"
	"testing"
	"time"

	"xnode/node/api"
)

func TestQueryRun(t *testing.T) {
	f, dir := fakeNode(t)
	f.PollsToFinish = 2
	f.Finish = func(q *api.Query) {
		q.Status = api.StatusDone
		q.Summary = api.QuerySummary{IntersectionSize: 2, PerPeer: map[string]int{"beta": 1, "gamma": 1}, OwnSize: 5}
		q.Result = &api.ResultTable{Columns: []string{"id", "peer"}, Rows: [][]string{{"110101199003077777", "beta"}, {"110101199003078888", "gamma"}}}
	}
	code, out, errOut := xnode(t, "query", "run", "--dir", dir, "--kind", "match", "--dataset", "loans", "--peers", "beta,gamma",
		"--peer-dataset", "risk", "--suite", "p256-sha256")
	if code != 0 {
		t.Fatalf("query run exited %d: %s", code, errOut)
	}
	wantReq := api.QueryRequest{Plugin: "match", Kind: "match", Dataset: "loans", Peers: []string{"beta", "gamma"}, PeerDataset: "risk", Suite: "p256-sha256"}
	if !reflectEqualJSON(f.Submits[0], wantReq) {
		t.Errorf("the node received %+v, want %+v", f.Submits[0], wantReq)
	}
	wantContains(t, "query run output", out, "done", "beta 1, gamma 1", "110101199003077777", "110101199003078888")

	code, out, errOut = xnode(t, "query", "run", "--dir", dir, "--kind", "overlap", "--dataset", "loans", "--peers", "beta", "--json")
	if code != 0 {
		t.Fatalf("query run --json exited %d: %s", code, errOut)
	}
	var q api.Query
	lastJSONLine(t, out, &q)
	if q.ID != "q2" || q.Kind != "overlap" || q.Status != api.StatusDone || q.Summary.IntersectionSize != 2 || len(q.Result.Rows) != 2 {
		t.Errorf("query run --json last line = %+v, want q2 overlap done with intersection 2 and 2 rows", q)
	}
}

func TestQueryRunFails(t *testing.T) {
	f, dir := fakeNode(t)
	f.Finish = func(q *api.Query) {
		q.Status = api.StatusFailed
		q.Error = "peer beta refused: dataset risk not allowed"
	}
	code, out, errOut := xnode(t, "query", "run", "--dir", dir, "--kind", "overlap", "--dataset", "loans", "--peers", "beta", "--json")
	if code != exitFailure {
		t.Errorf("a failed query run exited %d, want %d", code, exitFailure)
	}
	var q api.Query
	lastJSONLine(t, out, &q)
	if q.Status != api.StatusFailed || q.Error == "" {
		t.Errorf("failed query run --json last line = %+v, want status failed with the error", q)
	}
	wantContains(t, "stderr", errOut, "query q1 failed: peer beta refused", "xnode peers list")
}

func TestQueryRunTimeout(t *testing.T) {
	f, dir := fakeNode(t)
	f.PollsToFinish = 1 << 30
	start := time.Now()
	code, out, errOut := xnode(t, "query", "run", "--dir", dir, "--kind", "overlap", "--dataset", "loans", "--peers", "beta", "--timeout", "600ms", "--json")
	if code != exitFailure {
		t.Errorf("a query run past its timeout exited %d, want %d", code, exitFailure)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("query run --timeout 600ms took %s, want it to give up near 600ms", d)
	}
	wantContains(t, "stderr", errOut, "query q1 is still running", "xnode query status q1")
	var q api.Query
	lastJSONLine(t, out, &q)
	if q.ID != "q1" || q.Status != api.StatusRunning {
		t.Errorf("timed-out query run --json last line = %+v, want q1 running", q)
	}
}

func TestQueryRunUsage(t *testing.T) {
	_, dir := fakeNode(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no plugin", []string{"--dataset", "loans", "--peers", "beta"}, exitUsage, "--plugin"},
		{"no dataset", []string{"--kind", "overlap", "--peers", "beta"}, exitUsage, "--dataset"},
		{"no peers", []string{"--kind", "overlap", "--dataset", "loans"}, exitUsage, "--peers"},
		{"refused by the node", []string{"--kind", "overlap", "--dataset", "nope", "--peers", "beta"}, exitFailure, `dataset "nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := xnode(t, append([]string{"query", "run", "--dir", dir}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("query run %v exited %d, want %d (stderr %s)", tt.args, code, tt.wantCode, errOut)
			}
			wantContains(t, "stderr", errOut, tt.wantErr)
		})
	}
}

func TestQuerySubmitStatusResultList(t *testing.T) {
	f, dir := fakeNode(t)
	f.PollsToFinish = 2
	f.Finish = func(q *api.Query) {
		q.Status = api.StatusDone
		q.Summary.IntersectionSize = 3
		q.Result = &api.ResultTable{Columns: []string{"id"}, Rows: [][]string{{"a"}, {"b"}, {"c"}}}
	}
	code, out, errOut := xnode(t, "query", "submit", "--dir", dir, "--kind", "match", "--dataset", "loans", "--peers", "beta")
	if code != 0 || strings.TrimSpace(out) != "q1" {
		t.Fatalf("query submit = %d %q (stderr %s), want 0 and the ID q1", code, out, errOut)
	}

	code, out, _ = xnode(t, "query", "status", "q1", "--dir", dir)
	if code != 0 {
		t.Fatalf("query status exited %d", code)
	}
	wantContains(t, "status of a running query", out, "running", "blind with beta 1/2")

	code, _, errOut = xnode(t, "query", "result", "q1", "--dir", dir) // second poll: done
	if code != 0 {
		t.Fatalf("query result of a done query exited %d: %s", code, errOut)
	}
	code, out, _ = xnode(t, "query", "result", "q1", "--dir", dir, "--json")
	var q api.Query
	lastJSONLine(t, out, &q)
	if code != 0 || q.Status != api.StatusDone || len(q.Result.Rows) != 3 {
		t.Errorf("query result --json = %d %+v, want done with 3 rows", code, q)
	}

	code, out, _ = xnode(t, "query", "list", "--dir", dir)
	if code != 0 {
		t.Fatalf("query list exited %d", code)
	}
	wantContains(t, "query list", out, "ID", "q1", "match", "done", "loans", "beta")

	code, _, errOut = xnode(t, "query", "status", "q404", "--dir", dir)
	if code != exitFailure {
		t.Errorf("query status of an unknown ID exited %d, want %d", code, exitFailure)
	}
	wantContains(t, "stderr", errOut, `query "q404" not found`)
}

func TestQueryResultOfRunningQuery(t *testing.T) {
	f, dir := fakeNode(t)
	f.PollsToFinish = 1 << 30
	if code, _, errOut := xnode(t, "query", "submit", "--dir", dir, "--kind", "overlap", "--dataset", "loans", "--peers", "beta"); code != 0 {
		t.Fatalf("query submit exited %d: %s", code, errOut)
	}
	code, _, errOut := xnode(t, "query", "result", "q1", "--dir", dir)
	if code != exitFailure {
		t.Errorf("query result of a running query exited %d, want %d", code, exitFailure)
	}
	wantContains(t, "stderr", errOut, "still running", "xnode query status q1")
}

func TestQueryListResponder(t *testing.T) {
	f, dir := fakeNode(t)
	f.Queries["r1"] = api.Query{ID: "r1", Kind: "overlap", Role: "responder", Status: api.StatusDone, Dataset: "loans", Peers: []string{"beta"}}
	code, out, _ := xnode(t, "query", "status", "r1", "--dir", dir)
	if code != 0 || !strings.Contains(out, "not revealed to this node") {
		t.Errorf("query status of an answered query = %d:\n%s\nwant 0 and that the size was not revealed here", code, out)
	}
	code, out, _ = xnode(t, "query", "list", "--dir", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || strings.Contains(lines[1], " 0 ") {
		t.Errorf("query list with an answered query = %d:\n%s\nwant its SHARED cell to be -, not 0", code, out)
	}
}
