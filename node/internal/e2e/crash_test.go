package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"xnode/node/api"
)

// TestKillMidImport kills the node with SIGKILL while it imports a
// 1M-row file (XNODE_E2E_IMPORT_ROWS sets another size): after a restart
// no partial version is visible, and the same import then succeeds.
func TestKillMidImport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes and imports a large file")
	}
	root := t.TempDir()
	cons := filepath.Join(root, "consortium")
	xnode(t, "consortium", "init", "--dir", cons, "--name", "pilot")
	n := newNode(t, root, "bank-a")
	xnode(t, "consortium", "admit", "--dir", cons, "--node", n.dir)
	n.start(t)

	rows := 1_000_000
	if v := os.Getenv("XNODE_E2E_IMPORT_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100_000 {
			t.Fatalf("XNODE_E2E_IMPORT_ROWS=%q: want a number of rows, at least 100000 so the kill lands mid-import", v)
		}
		rows = n
	}
	path := filepath.Join(root, "big.csv")
	writeCSV(t, path, rows)

	// Import in the background; kill the node once it has made progress.
	progressed := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var once bool
		_, err := n.client.ImportDataset(context.Background(), api.ImportRequest{
			Name: "clients", File: path, IDColumns: []string{"id"}, IDKind: "cn_id", ValueColumns: []string{"amount"},
		}, func(doneBytes, total int64) {
			if !once && doneBytes > total/5 {
				once = true
				close(progressed)
			}
		})
		done <- err
	}()
	select {
	case <-progressed:
	case err := <-done:
		t.Fatalf("the import ended before it could be interrupted: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the import made no progress")
	}
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = n.cmd.Wait()
	if err := <-done; err == nil {
		t.Fatal("the import succeeded although the node was killed")
	}

	n.cmd = nil
	n.start(t)
	ctx := context.Background()
	list, err := n.client.ListDatasets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("after a crash mid-import the node shows %+v, want no dataset", list)
	}
	if _, err := n.client.ShowDataset(ctx, "clients"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("ShowDataset after the crash = %v, want not found", err)
	}
	rep, err := n.client.ImportDataset(ctx, api.ImportRequest{
		Name: "clients", File: path, IDColumns: []string{"id"}, IDKind: "cn_id", ValueColumns: []string{"amount"},
	}, nil)
	if err != nil {
		t.Fatalf("the import after the restart: %v", err)
	}
	if rep.Version != 1 || rep.Imported != int64(rows) {
		t.Errorf("import after the restart = version %d with %d rows, want version 1 with %d", rep.Version, rep.Imported, rows)
	}
}
