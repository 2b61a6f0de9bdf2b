//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"xnode/node/api"
	"xnode/node/config"
)

// TestDiskFullDuringImport makes the disk fill up under a running node
// while it imports a large file: the import fails with an error that says
// the disk (or the file-size limit) is full and what to do, the node keeps
// serving, and nothing is corrupt. Once the limit is lifted and the node
// restarted, the store opens, the earlier version is intact and
// queryable, no partial version is visible, and the same import succeeds.
//
// The full disk is the node's RLIMIT_FSIZE, lowered with prlimit(2) on the
// running process: a write or ftruncate past it fails with EFBIG, as
// ENOSPC does on a full disk, and bbolt hits it the same way (growing the
// file, or writing pages). It needs no root, no mount and no user
// namespace, so it works on any Linux CI machine, and the limit is set in
// bytes, after start-up. The kernel also sends SIGXFSZ; the Go runtime
// catches it and, with no signal.Notify for it, carries on, so the node
// sees only the EFBIG. (`sh -c 'ulimit -f N; exec xnode run'` is the same
// limit, in shell-dependent block units and from the first write on; a
// small tmpfs in `unshare -rm` needs unprivileged user namespaces, which
// many CI hosts disable.)
func TestDiskFullDuringImport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes and imports a large file")
	}
	root, a, b := pilotPair(t)
	// Version 1 of bank-a's clients: 0..3000; bank-b holds 2000..5000.
	a.importIDs(t, ids(0, 3000))
	b.importIDs(t, ids(2000, 5000))
	want := ids(2000, 3000)

	// The file that fills the disk: 100,000 rows take several times 4 MiB
	// in the store.
	const rows = 100_000
	big := filepath.Join(root, "big.csv")
	writeCSV(t, big, rows)
	ctx := context.Background()
	req := api.ImportRequest{Name: "clients", File: big, IDColumns: []string{"id"}, IDKind: "cn_id", ValueColumns: []string{"amount"}}

	// The store may grow by 4 MiB more, then the disk is full.
	dbPath := filepath.Join(a.dir, config.StoreFile)
	st, err := os.Stat(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	limit := uint64(st.Size()) + 4<<20
	// Only the soft limit is lowered: an unprivileged process may do that
	// to its own child, and keeps the hard one.
	var lim unix.Rlimit
	if err := unix.Prlimit(a.cmd.Process.Pid, unix.RLIMIT_FSIZE, nil, &lim); err != nil {
		t.Fatalf("failed to read the node's file-size limit: %v", err)
	}
	lim.Cur = limit
	if err := unix.Prlimit(a.cmd.Process.Pid, unix.RLIMIT_FSIZE, &lim, nil); err != nil {
		t.Fatalf("failed to lower the node's file-size limit to %d bytes: %v", limit, err)
	}

	_, err = a.client.ImportDataset(ctx, req, nil)
	if err == nil {
		t.Fatalf("importing %d rows with room for 4 MiB more succeeded; want it to fail on the full disk", rows)
	}
	t.Logf("import on the full disk: %v", err)
	full := regexp.MustCompile(`(?i)(disk|file-size limit).*full|full.*(disk|file-size limit)`)
	todo := regexp.MustCompile(`(?i)free (up )?(some )?(disk )?space|raise the (file-size )?limit`)
	if msg := err.Error(); !full.MatchString(msg) || !todo.MatchString(msg) || strings.Contains(msg, "internal error") {
		t.Errorf("the import's error = %q; want it to say the disk or file-size limit is full and to free space or raise the limit", msg)
	}
	if st, err := os.Stat(dbPath); err != nil || uint64(st.Size()) > limit {
		t.Errorf("the store file is %d bytes (%v), beyond the %d-byte limit", st.Size(), err, limit)
	}

	// The node keeps serving, and shows only the complete version.
	if _, err := a.client.NodeInfo(ctx); err != nil {
		t.Fatalf("the node stopped answering after the failed import: %v", err)
	}
	checkOnlyVersion1(t, a, 3000)

	// Stop it (the limit goes with the process) and check the file as bbolt
	// sees it before a node opens it again. node.log is far below the
	// limit, so the error line got written.
	stopNode(t, a, unix.SIGTERM)
	log, _ := os.ReadFile(filepath.Join(a.dir, "node.log"))
	if !regexp.MustCompile(`level=ERROR msg="import failed: no room for the store; no version was added".*no room to write the store`).Match(log) {
		t.Errorf("the node's log has no error line saying the import found no room for the store:\n%s", log)
	}
	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("bbolt cannot open the store after the full disk: %v", err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		var errs []string
		for err := range tx.Check() {
			errs = append(errs, err.Error())
		}
		if len(errs) > 0 {
			return fmt.Errorf("%d problems: %s", len(errs), strings.Join(errs, "; "))
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatalf("the store is inconsistent after the full disk: %v", err)
	}

	a.cmd = nil
	a.start(t) // without a limit
	checkOnlyVersion1(t, a, 3000)
	checkMatch(t, a, "bank-b", want)
	rep, err := a.client.ImportDataset(ctx, req, nil)
	if err != nil {
		t.Fatalf("the same import with room on the disk: %v", err)
	}
	if rep.Version != 2 || rep.Imported != rows {
		t.Errorf("the same import with room on the disk = version %d with %d rows, want version 2 with %d", rep.Version, rep.Imported, rows)
	}
}

// checkOnlyVersion1 checks that the clients dataset has exactly one
// version, of n rows.
func checkOnlyVersion1(t *testing.T, p *proc, n int64) {
	t.Helper()
	d, err := p.client.ShowDataset(context.Background(), "clients")
	if err != nil {
		t.Fatalf("ShowDataset(clients) at %s: %v", p.name, err)
	}
	if len(d.Versions) != 1 || d.Versions[0].Version != 1 || d.Versions[0].Rows != n {
		t.Errorf("clients at %s has versions %+v; want only version 1 with %d rows", p.name, d.Versions, n)
	}
}
