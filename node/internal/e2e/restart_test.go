package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"xnode/node/api"
)

// TestRestartMidQuery restarts one node of a 60k × 60k match while the
// protocol runs, in the three ways an operator or a crash does it. Each
// time, both nodes' records of the interrupted query end failed with an
// error saying what happened and what to do, and submitting the query
// again gives the exact intersection.
func TestRestartMidQuery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	_, a, b := pilotPair(t)
	// bank-a holds 0..60000, bank-b 20000..80000: 40,000 shared.
	a.importIDs(t, ids(0, 60_000))
	b.importIDs(t, ids(20_000, 80_000))
	want := ids(20_000, 60_000)

	// restarted says this node stopped during the query (not that the
	// peer misbehaved) and that the query should be submitted again.
	restarted := regexp.MustCompile(`(?i)\bnode\b.*\b(stopped|shutting down|shut down|restarted)\b.*\bsubmit (it|the query) again\b`)
	again := regexp.MustCompile(`(?i)\bsubmit (it|the query) again\b`)

	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"querier SIGTERM", syscall.SIGTERM}, {"querier SIGKILL", syscall.SIGKILL}} {
		sig := tc.sig
		t.Run(tc.name, func(t *testing.T) {
			id := submitMatch(t, a, "bank-b")
			waitMidProtocol(t, a, id)
			stopNode(t, a, sig)
			a.cmd = nil
			a.start(t)

			q, err := a.client.GetQuery(context.Background(), id)
			if err != nil {
				t.Fatalf("GetQuery(%s) at the restarted querier: %v", id, err)
			}
			if q.Status != api.StatusFailed || !restarted.MatchString(q.Error) || q.Result != nil {
				t.Errorf("the querier's record after a restart by %s = %s %q; want failed, saying the node stopped or restarted and to submit it again", tc.name, q.Status, q.Error)
			}
			if rec := waitStatus(t, b.dir, id, api.Finished); rec.Status != api.StatusFailed {
				t.Errorf("the responder's record after the querier's restart by %s = %s %q, want failed", tc.name, rec.Status, rec.Error)
			}
			checkMatch(t, a, "bank-b", want)
		})
	}

	t.Run("responder SIGKILL and restart", func(t *testing.T) {
		id := submitMatch(t, a, "bank-b")
		waitMidProtocol(t, a, id)
		stopNode(t, b, syscall.SIGKILL)
		b.cmd = nil
		b.start(t)

		got := waitStatus(t, a.dir, id, api.Finished)
		if got.Status != api.StatusFailed || !strings.Contains(got.Error, "bank-b") || !again.MatchString(got.Error) || got.Result != nil {
			t.Errorf("the querier's record when its responder restarted = %s %q; want failed, naming bank-b and saying to submit it again, and no result", got.Status, got.Error)
		}
		rec := queryJSON(t, xnode(t, "query", "status", id, "--dir", b.dir, "--json"))
		if rec.Status != api.StatusFailed || !restarted.MatchString(rec.Error) {
			t.Errorf("the restarted responder's record = %s %q; want failed, saying the node stopped or restarted and to submit it again", rec.Status, rec.Error)
		}
		checkMatch(t, a, "bank-b", want)
	})
}

// submitMatch submits a match of the clients datasets and returns its id.
func submitMatch(t *testing.T, p *proc, peer string) string {
	t.Helper()
	q, err := p.client.SubmitQuery(context.Background(), api.QueryRequest{Plugin: api.KindMatch, Dataset: "clients", Peers: []string{peer}})
	if err != nil {
		t.Fatalf("submit a match at %s: %v", p.name, err)
	}
	return q.ID
}

// waitMidProtocol returns once the querier's protocol session has
// processed items but not finished, so a fault lands mid-protocol.
func waitMidProtocol(t *testing.T, p *proc, id string) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 60*time.Second {
		q, err := p.client.GetQuery(context.Background(), id)
		if err != nil {
			t.Fatalf("GetQuery(%s): %v", id, err)
		}
		if api.Finished(q.Status) {
			t.Fatalf("query %s ended %s %q before the fault; it must still be running", id, q.Status, q.Error)
		}
		if pr := q.Progress; pr != nil && pr.Done > 0 && pr.Phase != "done" && pr.Phase != "finish" {
			t.Logf("fault at %s: phase %s, %d of %d, %v after submitting", p.name, pr.Phase, pr.Done, pr.Total, time.Since(start).Round(time.Millisecond))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("query %s at %s exchanged no items within 60s", id, p.name)
}

// stopNode sends sig to the node and waits for it to exit. A node stopped
// by SIGTERM must exit cleanly and log that it stopped.
func stopNode(t *testing.T, p *proc, sig syscall.Signal) {
	t.Helper()
	logPath := filepath.Join(p.dir, "node.log")
	var logged int64
	if st, err := os.Stat(logPath); err == nil {
		logged = st.Size()
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Fatalf("node %s did not exit within 20s of %s", p.name, sig)
	}
	if sig != syscall.SIGTERM {
		return
	}
	log, _ := os.ReadFile(logPath)
	log = log[min(logged, int64(len(log))):]
	if err != nil || !strings.Contains(string(log), "msg=stopping") {
		t.Fatalf("node %s on SIGTERM: exit %v; want a clean exit after logging \"stopping\"\n%s", p.name, err, log)
	}
}

// checkMatch runs a match with peer and checks it finds exactly want.
func checkMatch(t *testing.T, p *proc, peer string, want []string) {
	t.Helper()
	q := p.query(t, api.KindMatch, peer)
	if q.Status != api.StatusDone || q.Result == nil {
		t.Fatalf("the match submitted again = %s %q; want done with rows", q.Status, q.Error)
	}
	idCol := slices.Index(q.Result.Columns, "id")
	if idCol < 0 {
		t.Fatalf("match result columns %v lack id", q.Result.Columns)
	}
	got := make([]string, 0, len(q.Result.Rows))
	for _, r := range q.Result.Rows {
		got = append(got, r[idCol])
	}
	slices.Sort(got)
	if !slices.Equal(got, want) || q.Summary.IntersectionSize != len(want) {
		t.Errorf("the match submitted again = %d ids (size %d), want exactly the %d shared ids", len(got), q.Summary.IntersectionSize, len(want))
	}
}
