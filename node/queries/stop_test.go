package queries_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"xnode/node/api"
	"xnode/node/audit"
	"xnode/node/queries"
	"xnode/node/store"
)

// failures returns the failure audit entries of query id at m.
func failures(t *testing.T, m *member, id string) []audit.Entry {
	t.Helper()
	entries, err := m.audit.List(context.Background(), audit.Filter{QueryID: id, Kind: audit.KindFailure})
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// TestStopMidQuery: a query this node stops, by a graceful shutdown or a
// crash found at the next start, ends failed with an error that says this
// node stopped and to submit it again, not that the peer failed, and the
// audit chain records the failure.
func TestStopMidQuery(t *testing.T) {
	c := newConsortium(t)
	respView := &memView{ids: idRange(0, 5000)}
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(1000, 3000)}})
	b := c.member("bank-b", memDatasets{"clients": respView})
	connect(t, a, b)
	want := queries.ErrStopped.Error()

	t.Run("graceful stop at the querier", func(t *testing.T) {
		// The responder stalls while it reads its set, so the querier is
		// mid-protocol when it closes.
		reading, release := make(chan struct{}), make(chan struct{})
		var once, releaseOnce sync.Once
		respView.onRead = func(int) {
			once.Do(func() { close(reading) })
			<-release
		}
		unblock := func() { releaseOnce.Do(func() { close(release) }) }
		t.Cleanup(func() { unblock(); respView.onRead = nil })
		q, err := a.svc.Submit(context.Background(), api.QueryRequest{Plugin: "match", Dataset: "clients", Peers: []string{"bank-b"}})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-reading:
		case <-time.After(30 * time.Second):
			t.Fatal("the responder never started reading its set")
		}
		a = a.restart(t)
		unblock()
		got, err := a.svc.Get(context.Background(), q.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != api.StatusFailed || got.Error != want || got.Result != nil {
			t.Errorf("querier's record after a graceful stop = %s %q, want failed with %q and no result", got.Status, got.Error, want)
		}
		if strings.Contains(got.Error, "bank-b") {
			t.Errorf("querier's record %q blames the peer for this node's stop", got.Error)
		}
		f := failures(t, a, q.ID)
		if len(f) != 1 || !strings.Contains(string(f[0].Details), want) {
			t.Errorf("failure audit entries of the stopped query = %v, want one with %q", f, want)
		}
		if rec := wait(t, b, q.ID, api.Finished); rec.Status != api.StatusFailed {
			t.Errorf("responder's record = %s %q, want failed", rec.Status, rec.Error)
		}
	})

	t.Run("crash found at the next start", func(t *testing.T) {
		// A crash leaves the record running; the next start finds it.
		stale := api.Query{ID: "0123456789abcdef0123456789abcdef", Kind: "match", Role: "responder", Status: api.StatusRunning,
			Dataset: "clients", Peers: []string{}, Querier: "bank-b", Created: time.Now().UTC()}
		v, err := json.Marshal(stale)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.st.Put(store.Queries, []byte(stale.ID), v); err != nil {
			t.Fatal(err)
		}
		a = a.restart(t)
		got, err := a.svc.Get(context.Background(), stale.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != api.StatusFailed || got.Error != want {
			t.Errorf("record a crash left running, after a start = %s %q, want failed with %q", got.Status, got.Error, want)
		}
		f := failures(t, a, stale.ID)
		if len(f) != 1 || !strings.Contains(string(f[0].Details), want) || !strings.Contains(string(f[0].Details), `"role":"responder"`) {
			t.Errorf("failure audit entries of the interrupted query = %v, want one with the role and %q", f, want)
		}
	})
}
