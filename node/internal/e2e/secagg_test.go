package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"xnode/node/api"
)

// accountsCSV writes n client rows starting at id lo with a region, an
// amount with two decimals and overdue days, and returns the per-region
// count, amount sum (in cents) and count overdue beyond 90 days.
func accountsCSV(t *testing.T, path string, lo, n int) map[string][3]int64 {
	t.Helper()
	var b strings.Builder
	b.WriteString("id,region,amount,overdue_days\n")
	want := map[string][3]int64{}
	for i := lo; i < lo+n; i++ {
		region := []string{"north", "south", "east", "west"}[i%4]
		cents := int64(i*7919%500000) + 1
		overdue := i * 31 % 200
		fmt.Fprintf(&b, "%s,%s,%d.%02d,%d\n", residentID(i), region, cents/100, cents%100, overdue)
		f := want[region]
		f[0]++
		f[1] += cents
		if overdue > 90 {
			f[2]++
		}
		want[region] = f
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return want
}

// TestSecureSumSurvivesAKilledNode kills one of a four-party sum's
// participants with SIGKILL while a segment-stats query runs: three stay,
// the threshold (a strict majority and at least 3), so the querier still
// gets the exact sum of the other three.
func TestSecureSumSurvivesAKilledNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several node processes")
	}
	root := t.TempDir()
	cons := filepath.Join(root, "consortium")
	xnode(t, "consortium", "init", "--dir", cons, "--name", "pilot")
	nodes := []*proc{newNode(t, root, "bank-a"), newNode(t, root, "bank-b"), newNode(t, root, "bank-c"), newNode(t, root, "bank-d")}
	for _, p := range nodes {
		xnode(t, "consortium", "admit", "--dir", cons, "--node", p.dir)
	}
	for _, p := range nodes {
		p.start(t)
		if _, err := p.client.InstallPlugin(context.Background(), api.InstallPluginRequest{Builtin: "segment-stats"}); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	for _, peer := range []*proc{b, c, d} {
		xnode(t, "peers", "add", "--dir", a.dir, peer.name, peer.addr())
	}
	totals := map[string][3]int64{}
	// bank-c holds far more rows, so its Prepare is still running when it
	// is killed.
	for i, p := range nodes {
		rows := []int{2000, 3000, 200000, 2500}[i]
		csv := filepath.Join(p.dir, "clients.csv")
		part := accountsCSV(t, csv, i*1_000_000, rows)
		if p != c {
			for k, v := range part {
				f := totals[k]
				f[0], f[1], f[2] = f[0]+v[0], f[1]+v[1], f[2]+v[2]
				totals[k] = f
			}
		}
		xnode(t, "dataset", "import", "--dir", p.dir, "--name", "clients", "--file", csv, "--id-column", "id",
			"--id-kind", "cn_id", "--value-columns", "region:category,amount:decimal(2),overdue_days:integer")
	}
	q := queryJSON(t, xnode(t, "query", "submit", "--dir", a.dir, "--plugin", "segment-stats", "--dataset", "clients",
		"--peers", "bank-b,bank-c,bank-d", "--param", "group=region", "--param", "sum=amount", "--param", "over=overdue_days:90",
		"--param", "k=1", "--json"))
	waitStatus(t, a.dir, q.ID, func(s string) bool { return s == api.StatusRunning || api.Finished(s) })
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	got := waitStatus(t, a.dir, q.ID, api.Finished)
	if got.Status != api.StatusDone {
		t.Fatalf("segment stats with a killed participant = %s %q, want done over the others", got.Status, got.Error)
	}
	regions := slices.Sorted(func(yield func(string) bool) {
		for k := range totals {
			if !yield(k) {
				return
			}
		}
	})
	for _, region := range regions {
		w := totals[region]
		want := []string{region, strconv.FormatInt(w[0], 10), fmt.Sprintf("%d.%02d", w[1]/100, w[1]%100), strconv.FormatInt(w[2], 10)}
		found := false
		for _, row := range got.Result.Rows {
			if row[0] == region {
				found = true
				if !slices.Equal(row, want) {
					t.Errorf("region %s = %v, want the sum of bank-a, bank-b and bank-d %v", region, row, want)
				}
			}
		}
		if !found {
			t.Errorf("region %s missing from %v", region, got.Result.Rows)
		}
	}
	if got.Summary.Plugin["contributors"] != "3" {
		t.Errorf("contributors = %q, want 3 (bank-c was killed)", got.Summary.Plugin["contributors"])
	}
	_ = time.Second
}
