package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"xnode/node/api"
)

// TestResponderKilledMidProtocol kills the responder with SIGKILL while a
// match query runs: the querier's query fails with an error that names the
// peer and says what to do, the responder's store opens cleanly after a
// restart, and the same query then succeeds.
func TestResponderKilledMidProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	_, a, b := pilotPair(t)
	for i, p := range []*proc{a, b} {
		csv := filepath.Join(p.dir, "clients.csv")
		if err := os.WriteFile(csv, []byte("id\n"+strings.Join(ids(i*20_000, i*20_000+60_000), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		xnode(t, "dataset", "import", "--dir", p.dir, "--name", "clients", "--file", csv, "--id-column", "id", "--id-kind", "cn_id")
	}
	q := queryJSON(t, xnode(t, "query", "submit", "--dir", a.dir, "--plugin", "match", "--dataset", "clients", "--peers", "bank-b", "--json"))
	waitStatus(t, a.dir, q.ID, func(s string) bool { return s == api.StatusRunning || api.Finished(s) })
	time.Sleep(500 * time.Millisecond)
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = b.cmd.Wait()
	got := waitStatus(t, a.dir, q.ID, api.Finished)
	if got.Status != api.StatusFailed || !strings.Contains(got.Error, "bank-b") || got.Result != nil {
		t.Fatalf("query whose responder was killed = %s %q, want failed naming bank-b and no result", got.Status, got.Error)
	}

	b.cmd = nil
	b.start(t)
	// Restarted, bank-b marks the interrupted session failed.
	rec := queryJSON(t, xnode(t, "query", "status", q.ID, "--dir", b.dir, "--json"))
	if rec.Status != api.StatusFailed {
		t.Errorf("bank-b's record of the interrupted session = %s, want failed", rec.Status)
	}
	retry := queryJSON(t, xnode(t, "query", "submit", "--dir", a.dir, "--plugin", "match", "--dataset", "clients", "--peers", "bank-b", "--json"))
	done := waitStatus(t, a.dir, retry.ID, api.Finished)
	if done.Status != api.StatusDone || done.Summary.IntersectionSize != 40_000 {
		t.Errorf("the retry = %s %q, size %d; want done with 40000", done.Status, done.Error, done.Summary.IntersectionSize)
	}
}
