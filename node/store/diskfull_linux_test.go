//go:build linux

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDiskFull lowers this process's file-size limit (RLIMIT_FSIZE) so the
// store file cannot grow, which is what a full disk does to bbolt: the
// write fails with ErrDiskFull and a message that says what to do, the
// file stays consistent, nothing staged is visible, and once there is room
// the same staged version takes more rows and commits. The limit is the
// process's, so the test does not run in parallel, keeps it above every
// small file the test binary writes, and restores it before checking.
func TestDiskFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s := openTest(t, path)
	sv, err := s.BeginVersion("loans")
	if err != nil {
		t.Fatal(err)
	}
	stageRows(t, sv, "a", "b")
	if _, err := sv.Commit(nil); err != nil {
		t.Fatal(err)
	}

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	limit := uint64(st.Size()) + 1<<20
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: old.Max}); err != nil {
		t.Fatalf("failed to lower the file-size limit: %v", err)
	}
	restore := func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatalf("failed to restore the file-size limit: %v", err)
		}
	}
	sv, err = s.BeginVersion("loans")
	if err != nil {
		restore()
		t.Fatal(err)
	}
	// 1,000 rows of about 1 KB per chunk: 1 MiB fills up within a few.
	chunk := func(c int) []NewRow {
		rows := make([]NewRow, 1000)
		for i := range rows {
			k := fmt.Sprintf("key-%d-%d", c, i)
			rows[i] = NewRow{Key: []byte(k), Value: []byte(strings.Repeat("v", 1000))}
		}
		return rows
	}
	c := 0
	for ; c < 100 && err == nil; c++ {
		_, err = sv.Append(chunk(c))
	}
	restore()
	if err == nil {
		t.Fatalf("Append of %d MB under a limit of %d bytes succeeded; want ErrDiskFull", c, limit)
	}
	t.Logf("Append on a full disk: %v", err)
	if !errors.Is(err, ErrDiskFull) {
		t.Errorf("Append on a full disk = %v; want it to wrap ErrDiskFull", err)
	}
	for _, want := range []string{"no room to write the store at " + path, "the disk is full", "file-size limit", "free disk space or raise the limit"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Append on a full disk = %q; want it to say %q", err, want)
		}
	}
	if st, err := os.Stat(path); err != nil || uint64(st.Size()) > limit {
		t.Errorf("the store file is %d bytes (%v), beyond the %d-byte limit", st.Size(), err, limit)
	}
	check(t, s)
	if all, err := s.DatasetVersions("loans"); err != nil || len(all) != 1 || all[0].Rows != 2 {
		t.Errorf("versions after the failed append = %+v, %v; want only version 1 with 2 rows", all, err)
	}

	// With room again, the staged version takes the failed chunk and commits.
	staged := sv.Len()
	if _, err := sv.Append(chunk(c - 1)); err != nil {
		t.Fatalf("Append with room again = %v", err)
	}
	dv, err := sv.Commit(nil)
	if err != nil || dv.Version != 2 || dv.Rows != staged+1000 {
		t.Errorf("Commit with room again = version %d with %d rows, %v; want version 2 with %d", dv.Version, dv.Rows, err, staged+1000)
	}
	check(t, s)
}

func TestNoRoom(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"ENOSPC from a write", &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, true},
		{"EDQUOT from fdatasync", fmt.Errorf("sync: %w", syscall.EDQUOT), true},
		{"EFBIG from a write", &os.PathError{Op: "write", Path: "x", Err: syscall.EFBIG}, true},
		{"bbolt's flattened resize error", errors.New("file resize error: truncate /d/store.db: no space left on device"), true},
		{"another resize error", errors.New("file resize error: truncate /d/store.db: input/output error"), false},
		{"a callback's error", errors.New("row 3 has an empty key"), false},
		{"EIO", &os.PathError{Op: "write", Path: "x", Err: syscall.EIO}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := noRoom(tc.err); got != tc.want {
				t.Errorf("noRoom(%q) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
