package main

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"xnode/node/api"
	"xnode/node/api/apitest"
)

func TestQueryParams(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantPlugin string
		wantParams map[string]string
		wantErr    string
	}{
		{name: "plugin and params", args: []string{"--plugin", "overlap", "--param", "filter=segment:retail", "--param", "peer_filter=a:b,c"},
			wantPlugin: "overlap", wantParams: map[string]string{"filter": "segment:retail", "peer_filter": "a:b,c"}},
		{name: "value with =", args: []string{"--plugin", "match", "--param", "columns=a=b"},
			wantPlugin: "match", wantParams: map[string]string{"columns": "a=b"}},
		{name: "empty value", args: []string{"--plugin", "match", "--param", "columns="},
			wantPlugin: "match", wantParams: map[string]string{"columns": ""}},
		{name: "kind alias", args: []string{"--kind", "overlap"}, wantPlugin: "overlap"},
		{name: "kind equal to plugin", args: []string{"--kind", "match", "--plugin", "match"}, wantPlugin: "match"},
		{name: "kind differs from plugin", args: []string{"--kind", "match", "--plugin", "overlap"}, wantCode: exitUsage,
			wantErr: "--plugin overlap and --kind match differ"},
		{name: "param without =", args: []string{"--plugin", "overlap", "--param", "filter"}, wantCode: exitUsage,
			wantErr: `--param "filter": want KEY=VALUE`},
		{name: "param without key", args: []string{"--plugin", "overlap", "--param", "=x"}, wantCode: exitUsage, wantErr: "want KEY=VALUE"},
		{name: "param twice", args: []string{"--plugin", "overlap", "--param", "filter=a:b", "--param", "filter=c:d"}, wantCode: exitUsage,
			wantErr: "--param filter is given twice"},
		{name: "plugin not installed", args: []string{"--plugin", "risk-check"}, wantCode: exitFailure,
			wantErr: `the node refused the query: plugin "risk-check" is not installed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, dir := fakeNode(t)
			args := append([]string{"query", "submit", "--dir", dir, "--dataset", "loans", "--peers", "beta"}, tt.args...)
			code, out, errOut := xnode(t, args...)
			if code != tt.wantCode {
				t.Fatalf("xnode %v exited %d (stdout %q, stderr %q), want %d", args, code, out, errOut, tt.wantCode)
			}
			if tt.wantErr != "" {
				wantContains(t, "stderr", errOut, tt.wantErr)
			}
			if tt.wantCode != 0 {
				if tt.wantCode == exitUsage && len(f.Submits) != 0 {
					t.Errorf("a usage error still reached the node: %+v", f.Submits)
				}
				return
			}
			got := f.Submits[0]
			if got.Plugin != tt.wantPlugin || !reflect.DeepEqual(got.Params, tt.wantParams) {
				t.Errorf("the node received plugin %q params %v, want %q %v", got.Plugin, got.Params, tt.wantPlugin, tt.wantParams)
			}
		})
	}
}

// runWait runs `query run` through runQueryRun with a fast poll and
// returns its stdout, stderr and error.
func runWait(t *testing.T, dir string, asJSON bool) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	o := queryOptions{
		clientOptions: clientOptions{Dir: dir, JSON: asJSON, Stdout: &out, Stderr: &errOut},
		QueryRequest:  api.QueryRequest{Plugin: "overlap", Dataset: "loans", Peers: []string{"beta", "gamma"}},
		Timeout:       10 * time.Second,
		Poll:          time.Millisecond,
	}
	err := runQueryRun(context.Background(), o, nil)
	return out.String(), errOut.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return exitFailure
	}
	return exitOK
}

func awaiting(q *api.Query) {
	q.Status = api.StatusAwaitingApproval
	q.PeerStates = []api.PeerState{{Peer: "beta", Status: api.StatusAwaitingApproval, Rule: "manual-approval"}, {Peer: "gamma", Status: "approved", Rule: "auto"}}
}

func TestQueryRunWaitsThroughApproval(t *testing.T) {
	f, dir := fakeNode(t)
	f.SubmitStatus = api.StatusProposed
	f.Steps = []func(*api.Query){
		func(q *api.Query) {}, // still proposed
		awaiting,
		awaiting, // unchanged: printed once
		func(q *api.Query) {
			q.Status = api.StatusRunning
			q.PeerStates[0] = api.PeerState{Peer: "beta", Status: "approved", Rule: "manual-approval"}
		},
	}
	f.Finish = func(q *api.Query) {
		q.Status = api.StatusDone
		q.Summary.IntersectionSize = 7
		q.Result = &api.ResultTable{Columns: []string{"peer", "shared"}, Rows: [][]string{{"beta", "4"}, {"gamma", "3"}}}
	}
	out, errOut, err := runWait(t, dir, false)
	if err != nil {
		t.Fatalf("query run through approval: %v\nstderr:\n%s", err, errOut)
	}
	wantContains(t, "stderr", errOut, "submitted query q1",
		"query q1: proposed (beta proposed, gamma proposed)",
		"query q1: awaiting-approval (beta awaiting-approval (manual-approval), gamma approved (auto))")
	if n := strings.Count(errOut, "awaiting-approval (beta"); n != 1 {
		t.Errorf("stderr shows the unchanged awaiting state %d times, want once:\n%s", n, errOut)
	}
	wantContains(t, "stdout", out, "overlap@1.0.0", "done", "beta approved (manual-approval)", "gamma  3")
}

func TestQueryRunDenied(t *testing.T) {
	f, dir := fakeNode(t)
	f.SubmitStatus = api.StatusProposed
	f.Steps = []func(*api.Query){awaiting, func(q *api.Query) {
		q.Status = api.StatusDenied
		q.Error = "denied by beta"
		q.PeerStates[0] = api.PeerState{Peer: "beta", Status: api.StatusDenied, Rule: "min-set-size", Reason: "querier set of 5 is below the minimum 100"}
	}}
	_, errOut, err := runWait(t, dir, false)
	if exitCode(err) != exitFailure {
		t.Fatalf("a denied query run returned %v (code %d), want exit %d", err, exitCode(err), exitFailure)
	}
	for _, want := range []string{"query q1 was denied by beta", "rule min-set-size", "querier set of 5 is below the minimum 100"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("denied query run error = %q, want it to contain %q", err, want)
		}
	}
	wantContains(t, "stderr", errOut, "awaiting-approval")

	// The same through the command line, with --json: the query is the last
	// line and the exit code is 1.
	f.Steps = []func(*api.Query){func(q *api.Query) {
		q.Status = api.StatusDenied
		q.PeerStates = []api.PeerState{{Peer: "beta", Status: api.StatusDenied, Rule: "manual", Reason: "not this quarter"}}
	}}
	code, out, errOut := xnode(t, "query", "run", "--dir", dir, "--plugin", "overlap", "--dataset", "loans", "--peers", "beta", "--json")
	var q api.Query
	lastJSONLine(t, out, &q)
	if code != exitFailure || q.Status != api.StatusDenied {
		t.Errorf("query run --json of a denied query = %d %+v, want %d and status denied", code, q, exitFailure)
	}
	wantContains(t, "stderr", errOut, "denied by beta (rule manual): not this quarter")
}

func TestQueryRunExpired(t *testing.T) {
	f, dir := fakeNode(t)
	f.SubmitStatus = api.StatusProposed
	f.Steps = []func(*api.Query){awaiting, func(q *api.Query) { q.Status = api.StatusExpired }}
	_, _, err := runWait(t, dir, true)
	if exitCode(err) != exitFailure || !strings.Contains(err.Error(), "query q1 expired: no approval came in time from beta") {
		t.Errorf("an expired query run returned %v, want exit 1 naming beta as the peer that did not approve", err)
	}
}

func TestQueryStatusShowsPluginAndPeerStates(t *testing.T) {
	f, dir := fakeNode(t)
	f.Queries["q5"] = api.Query{ID: "q5", Kind: "overlap", Role: "querier", Status: api.StatusAwaitingApproval, Dataset: "loans",
		Plugin: &api.PluginRef{Name: "overlap", Version: "1.0.0", Digest: "sha256:" + strings.Repeat("ab", 32)},
		Params: map[string]string{"filter": "segment:retail"}, Protocol: "psi.cardinality", Peers: []string{"beta", "gamma"},
		PeerStates: []api.PeerState{{Peer: "beta", Status: "approved"}, {Peer: "gamma", Status: api.StatusAwaitingApproval, Rule: "manual-approval"}},
		Expires:    time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)}
	f.PollsToFinish = 1 << 30
	code, out, errOut := xnode(t, "query", "status", "q5", "--dir", dir)
	if code != 0 {
		t.Fatalf("query status exited %d: %s", code, errOut)
	}
	wantContains(t, "query status", out, "overlap@1.0.0 (sha256:abababababab)", "filter=segment:retail", "psi.cardinality",
		"awaiting-approval", "beta approved", "gamma awaiting-approval (manual-approval)", "expires")
	code, out, _ = xnode(t, "query", "list", "--dir", dir)
	if code != 0 {
		t.Fatalf("query list exited %d", code)
	}
	wantContains(t, "query list", out, "PLUGIN", "overlap@1.0.0", "beta:approved,gamma:awaiting-approval")
}

func TestQueryStatusOfDeniedQuery(t *testing.T) {
	f, dir := fakeNode(t)
	f.Queries["q6"] = api.Query{ID: "q6", Kind: "match", Role: "querier", Status: api.StatusDenied, Dataset: "loans", Peers: []string{"beta"},
		PeerStates: []api.PeerState{{Peer: "beta", Status: api.StatusDenied, Rule: "rate-limit", Reason: "10 queries per day"}}}
	code, out, errOut := xnode(t, "query", "status", "q6", "--dir", dir)
	if code != exitFailure {
		t.Errorf("query status of a denied query exited %d, want %d", code, exitFailure)
	}
	wantContains(t, "stdout", out, "denied", "beta denied by rule rate-limit: 10 queries per day")
	wantContains(t, "stderr", errOut, "denied by beta (rule rate-limit): 10 queries per day")
	code, _, errOut = xnode(t, "query", "result", "q6", "--dir", dir)
	if code != exitFailure || !strings.Contains(errOut, "rate-limit") {
		t.Errorf("query result of a denied query = %d %q, want %d with the rule", code, errOut, exitFailure)
	}
}

func pendingNode(t *testing.T) (*apitest.Fake, string) {
	f, dir := fakeNode(t)
	f.Queries["r1"] = api.Query{ID: "r1", Kind: "match", Role: "responder", Status: api.StatusAwaitingApproval, Querier: "beta",
		Plugin: &api.PluginRef{Name: "match", Version: "1.0.0"}, Params: map[string]string{"columns": "amount"}, Dataset: "loans",
		Peers:      []string{"alpha"},
		PeerStates: []api.PeerState{{Peer: "alpha", Status: api.StatusAwaitingApproval, Rule: "manual-approval"}},
		Expires:    time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)}
	f.Queries["r2"] = api.Query{ID: "r2", Kind: "overlap", Role: "responder", Status: api.StatusAwaitingApproval, Querier: "gamma", Dataset: "loans"}
	f.Queries["d1"] = api.Query{ID: "d1", Kind: "overlap", Role: "responder", Status: api.StatusDone}
	return f, dir
}

func TestQueryPending(t *testing.T) {
	_, dir := pendingNode(t)
	code, out, errOut := xnode(t, "query", "pending", "--dir", dir)
	if code != 0 {
		t.Fatalf("query pending exited %d: %s", code, errOut)
	}
	wantContains(t, "query pending", out, "QUERIER", "r1", "beta", "match@1.0.0", "columns=amount", "manual-approval", "r2", "gamma",
		"xnode query approve ID")
	if strings.Contains(out, "d1") {
		t.Errorf("query pending lists the finished d1:\n%s", out)
	}
	code, out, _ = xnode(t, "query", "pending", "--dir", dir, "--json")
	var qs []api.Query
	lastJSONLine(t, out, &qs)
	if code != 0 || len(qs) != 2 || qs[0].ID != "r1" {
		t.Errorf("query pending --json = %d %+v, want r1 and r2", code, qs)
	}

	_, dir = fakeNode(t)
	code, out, _ = xnode(t, "query", "pending", "--dir", dir)
	if code != 0 || !strings.Contains(out, "no queries await") {
		t.Errorf("query pending with none = %d %q, want 0 saying none await", code, out)
	}
	code, out, _ = xnode(t, "query", "pending", "--dir", dir, "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("query pending --json with none = %d %q, want []", code, out)
	}
}

func TestQueryApprove(t *testing.T) {
	f, dir := pendingNode(t)
	code, out, errOut := xnode(t, "query", "approve", "r1", "--dir", dir)
	if code != 0 {
		t.Fatalf("query approve exited %d: %s", code, errOut)
	}
	wantContains(t, "query approve", out, "approved query r1 (match@1.0.0 from beta); it is now running")
	if f.Queries["r1"].Status != api.StatusRunning {
		t.Errorf("after approve r1 is %s, want running", f.Queries["r1"].Status)
	}

	code, out, _ = xnode(t, "query", "approve", "r2", "--dir", dir, "--json")
	var q api.Query
	lastJSONLine(t, out, &q)
	if code != 0 || q.ID != "r2" || q.Status != api.StatusRunning {
		t.Errorf("query approve --json = %d %+v, want r2 running", code, q)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"twice", []string{"r1"}, exitFailure, "failed to approve query r1: query r1 is running, not awaiting approval"},
		{"unknown", []string{"r9"}, exitFailure, `query "r9" not found`},
		{"no id", nil, exitUsage, "accepts 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := xnode(t, append([]string{"query", "approve", "--dir", dir}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("query approve %v exited %d, want %d (stderr %s)", tt.args, code, tt.wantCode, errOut)
			}
			wantContains(t, "stderr", errOut, tt.wantErr)
		})
	}
}

func TestQueryDeny(t *testing.T) {
	f, dir := pendingNode(t)
	code, _, errOut := xnode(t, "query", "deny", "r1", "--dir", dir)
	if code != exitUsage || !strings.Contains(errOut, "--reason") {
		t.Errorf("query deny without --reason = %d %q, want %d asking for --reason", code, errOut, exitUsage)
	}
	code, _, _ = xnode(t, "query", "deny", "r1", "--dir", dir, "--reason", "   ")
	if code != exitUsage || f.Queries["r1"].Status != api.StatusAwaitingApproval {
		t.Errorf("query deny with a blank reason = %d (r1 %s), want %d and r1 untouched", code, f.Queries["r1"].Status, exitUsage)
	}

	code, out, errOut := xnode(t, "query", "deny", "r1", "--dir", dir, "--reason", "needs a ticket number")
	if code != 0 {
		t.Fatalf("query deny exited %d: %s", code, errOut)
	}
	wantContains(t, "query deny", out, "denied query r1 (match@1.0.0 from beta): needs a ticket number")
	if got := f.Queries["r1"]; got.Status != api.StatusDenied || got.Error != "needs a ticket number" {
		t.Errorf("after deny r1 = %s %q, want denied with the reason", got.Status, got.Error)
	}

	code, out, _ = xnode(t, "query", "deny", "r2", "--dir", dir, "--reason", "no", "--json")
	var q api.Query
	lastJSONLine(t, out, &q)
	if code != 0 || q.Status != api.StatusDenied || len(q.PeerStates) != 1 || q.PeerStates[0].Reason != "no" {
		t.Errorf("query deny --json = %d %+v, want r2 denied with this node's reason in its peer states", code, q)
	}

	code, _, errOut = xnode(t, "query", "deny", "d1", "--dir", dir, "--reason", "x")
	if code != exitFailure || !strings.Contains(errOut, "not awaiting approval") {
		t.Errorf("query deny of a finished query = %d %q, want %d saying it is not awaiting approval", code, errOut, exitFailure)
	}
}

func TestQueryRunTimesOutAwaitingApproval(t *testing.T) {
	f, dir := fakeNode(t)
	f.SubmitStatus = api.StatusProposed
	f.Steps = []func(*api.Query){awaiting}
	f.PollsToFinish = 1 << 30
	var out, errOut bytes.Buffer
	o := queryOptions{
		clientOptions: clientOptions{Dir: dir, Stdout: &out, Stderr: &errOut},
		QueryRequest:  api.QueryRequest{Plugin: "overlap", Dataset: "loans", Peers: []string{"beta", "gamma"}},
		Timeout:       300 * time.Millisecond,
		Poll:          time.Millisecond,
	}
	err := runQueryRun(context.Background(), o, nil)
	if exitCode(err) != exitFailure || !strings.Contains(err.Error(), "query q1 is still awaiting-approval (beta awaiting-approval") {
		t.Errorf("query run that times out awaiting approval returned %v, want exit 1 naming the peer still to approve", err)
	}
}
