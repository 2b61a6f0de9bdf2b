package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTest(t *testing.T, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(path, opts...)
	if err != nil {
		t.Fatalf("Open(%s) = %v, want a store", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func check(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Fatalf("Check() = %v, want a consistent file", err)
	}
}

func TestOpenCreatesBucketsAndSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "node.db")
	s := openTest(t, path)
	v, err := s.SchemaVersion()
	if err != nil || v != SchemaVersion {
		t.Fatalf("SchemaVersion() = %d, %v; want %d", v, err, SchemaVersion)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, b := range allBuckets() {
			if tx.Bucket(b) == nil {
				t.Errorf("bucket %q missing after Open", b)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	openTest(t, path)
	start := time.Now()
	_, err := Open(path, WithTimeout(100*time.Millisecond))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("the store at %s is locked by another xnode process; stop it or use another --dir", path)
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second Open took %v, want about the 100ms timeout", d)
	}
}

func TestSchemaNewerIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, withSchema(SchemaVersion+1, nil))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(path)
	if err == nil || !strings.Contains(err.Error(), "newer than this xnode supports") {
		t.Fatalf("Open of a newer schema = %v, want a 'newer than this xnode supports' error", err)
	}
}

func TestMigrationRunsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s := openTest(t, path)
	if err := s.Put(Queries, []byte("q"), []byte("old")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	runs := 0
	m := []migration{{to: SchemaVersion + 1, name: "rewrite queries", up: func(tx *bolt.Tx) error {
		runs++
		return tx.Bucket([]byte(Queries)).Put([]byte("q"), []byte("new"))
	}}}
	for i := 0; i < 2; i++ {
		s, err := Open(path, withSchema(SchemaVersion+1, m))
		if err != nil {
			t.Fatalf("Open with migration = %v", err)
		}
		v, _ := s.SchemaVersion()
		got, _ := s.Get(Queries, []byte("q"))
		check(t, s)
		s.Close()
		if v != SchemaVersion+1 || string(got) != "new" {
			t.Errorf("after open %d: schema %d value %q, want schema %d value %q", i+1, v, got, SchemaVersion+1, "new")
		}
	}
	if runs != 1 {
		t.Errorf("migration ran %d times, want 1", runs)
	}
}

func TestMigrationFailureKeepsOldSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	openTest(t, path).Close()
	m := []migration{{to: SchemaVersion + 1, name: "broken", up: func(*bolt.Tx) error { return errors.New("boom") }}}
	if _, err := Open(path, withSchema(SchemaVersion+1, m)); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Open with a failing migration = %v, want the migration's error", err)
	}
	s := openTest(t, path)
	if v, _ := s.SchemaVersion(); v != SchemaVersion {
		t.Errorf("schema after failed migration = %d, want %d", v, SchemaVersion)
	}
}

func TestGenericBuckets(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "node.db"))
	for _, b := range genericBuckets {
		t.Run(string(b), func(t *testing.T) {
			if _, err := s.Get(b, []byte("missing")); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(missing) = %v, want ErrNotFound", err)
			}
			for i := uint64(1); i <= 3; i++ {
				seq, err := s.NextSequence(b)
				if err != nil || seq != i {
					t.Fatalf("NextSequence() = %d, %v; want %d", seq, err, i)
				}
				if err := s.Put(b, EncodeUint64(seq), []byte(fmt.Sprintf("v%d", seq))); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Get(b, EncodeUint64(2))
			if err != nil || string(got) != "v2" {
				t.Errorf("Get(2) = %q, %v; want v2", got, err)
			}
			got[0] = 'X' // a copy: must not change the store
			if again, _ := s.Get(b, EncodeUint64(2)); string(again) != "v2" {
				t.Errorf("Get(2) after changing the returned slice = %q, want v2", again)
			}
			if err := s.Delete(b, EncodeUint64(2)); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(b, EncodeUint64(2)); err != nil {
				t.Errorf("Delete of a missing key = %v, want nil", err)
			}
			var keys []uint64
			var vals []string
			err = s.ForEach(b, func(k, v []byte) error {
				n, err := DecodeUint64(k)
				keys, vals = append(keys, n), append(vals, string(v))
				return err
			})
			if err != nil || fmt.Sprint(keys, vals) != "[1 3] [v1 v3]" {
				t.Errorf("ForEach = %v %v, %v; want [1 3] [v1 v3]", keys, vals, err)
			}
			err = s.View(func(tx *Tx) error {
				k, v, err := tx.Last(b)
				if err != nil || !bytes.Equal(k, EncodeUint64(3)) || string(v) != "v3" {
					t.Errorf("Last = %x %q %v, want key 3 v3", k, v, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := s.Put(Bucket("datasets"), []byte("k"), []byte("v")); err == nil {
		t.Error("Put into an internal bucket succeeded, want an unknown-bucket error")
	}
	check(t, s)
}

func TestForEachPrefixAndAtomicUpdate(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "node.db"))
	for _, k := range []string{"a/1", "a/2", "b/1", "a"} {
		if err := s.Put(OPRF, []byte(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := s.ForEachPrefix(OPRF, []byte("a/"), func(k, _ []byte) error { got = append(got, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[a/1 a/2]" {
		t.Errorf("ForEachPrefix(a/) = %v, want [a/1 a/2]", got)
	}
	err := s.Update(func(tx *Tx) error {
		if err := tx.Put(Audit, []byte("x"), []byte("1")); err != nil {
			return err
		}
		return errors.New("abort")
	})
	if err == nil {
		t.Fatal("Update returning an error = nil, want that error")
	}
	if _, err := s.Get(Audit, []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after a failed Update = %v, want ErrNotFound (rolled back)", err)
	}
}

func stageRows(t *testing.T, sv *StagedVersion, keys ...string) []int {
	t.Helper()
	rows := make([]NewRow, len(keys))
	for i, k := range keys {
		rows[i] = NewRow{Key: []byte(k), Value: []byte("val-" + k)}
	}
	dups, err := sv.Append(rows)
	if err != nil {
		t.Fatalf("Append(%v) = %v", keys, err)
	}
	return dups
}

func TestStagedVersionIsInvisibleUntilCommit(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "node.db"))
	sv, err := s.BeginVersion("loans")
	if err != nil {
		t.Fatal(err)
	}
	if dups := stageRows(t, sv, "a", "b", "a"); fmt.Sprint(dups) != "[2]" {
		t.Errorf("dups in first chunk = %v, want [2]", dups)
	}
	if dups := stageRows(t, sv, "c", "b", "d"); fmt.Sprint(dups) != "[1]" {
		t.Errorf("dups in second chunk = %v, want [1] (b staged earlier)", dups)
	}
	if names, _ := s.DatasetNames(); len(names) != 0 {
		t.Errorf("DatasetNames before commit = %v, want none", names)
	}
	if _, err := s.DatasetVersion("loans", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("DatasetVersion before commit = %v, want ErrNotFound", err)
	}
	check(t, s)

	dv, err := sv.Commit([]byte("meta1"))
	if err != nil {
		t.Fatal(err)
	}
	if dv.Version != 1 || dv.Rows != 4 || string(dv.Meta) != "meta1" {
		t.Errorf("Commit = version %d rows %d meta %q, want 1, 4, meta1", dv.Version, dv.Rows, dv.Meta)
	}
	if names, err := s.DatasetNames(); err != nil || fmt.Sprint(names) != "[loans]" {
		t.Errorf("DatasetNames after commit = %q, %v; want [loans]", names, err)
	}
	if _, err := sv.Append([]NewRow{{Key: []byte("z")}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Commit = %v, want ErrClosed", err)
	}
	if err := sv.Abort(); err != nil {
		t.Errorf("Abort after Commit = %v, want nil", err)
	}

	// Read back in batches of 3: positions in import order, duplicates gone.
	var keys []string
	buf := make([]Row, 3)
	for from := uint64(0); ; {
		n, err := s.ReadRows("loans", 1, from, buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range buf[:n] {
			if r.Pos != from || string(r.Value) != "val-"+string(r.Key) {
				t.Errorf("row %d = pos %d %q/%q", from, r.Pos, r.Key, r.Value)
			}
			keys = append(keys, string(r.Key))
			from++
		}
	}
	if fmt.Sprint(keys) != "[a b c d]" {
		t.Errorf("ReadRows keys = %v, want [a b c d]", keys)
	}
	r, err := s.RowAt("loans", 1, 2)
	if err != nil || string(r.Key) != "c" {
		t.Errorf("RowAt(2) = %q, %v; want c", r.Key, err)
	}
	r, err = s.RowByKey("loans", 1, []byte("d"))
	if err != nil || r.Pos != 3 {
		t.Errorf("RowByKey(d) = pos %d, %v; want 3", r.Pos, err)
	}
	if _, err := s.RowByKey("loans", 1, []byte("zz")); !errors.Is(err, ErrNotFound) {
		t.Errorf("RowByKey(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.RowAt("loans", 1, 4); !errors.Is(err, ErrNotFound) {
		t.Errorf("RowAt(4) = %v, want ErrNotFound", err)
	}

	sv2, _ := s.BeginVersion("loans")
	stageRows(t, sv2, "x")
	dv2, err := sv2.Commit(nil)
	if err != nil || dv2.Version != 2 {
		t.Fatalf("second Commit = version %d, %v; want 2", dv2.Version, err)
	}
	latest, err := s.DatasetVersion("loans", 0)
	if err != nil || latest.Version != 2 || latest.Rows != 1 {
		t.Errorf("DatasetVersion(latest) = %+v, %v; want version 2 with 1 row", latest, err)
	}
	all, err := s.DatasetVersions("loans")
	if err != nil || len(all) != 2 || string(all[0].Meta) != "meta1" {
		t.Errorf("DatasetVersions = %d versions, %v; want 2, first with meta1", len(all), err)
	}
	check(t, s)
}

func TestCrashMidImportLeavesNoPartialVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	sv, _ := s.BeginVersion("loans")
	for i := 0; i < 5; i++ {
		stageRows(t, sv, fmt.Sprintf("k%d-a", i), fmt.Sprintf("k%d-b", i))
	}
	s.Close() // the process dies: no Commit, no Abort

	s = openTest(t, path)
	if names, _ := s.DatasetNames(); len(names) != 0 {
		t.Errorf("DatasetNames after the crash = %v, want none", names)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketStaged).Cursor().First(); k != nil {
			t.Errorf("staged marker %x still present after reopen", k)
		}
		return tx.Bucket(bucketRows).ForEachBucket(func(k []byte) error {
			t.Errorf("row set %x still present after reopen", k)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sv.Commit(nil); err == nil {
		t.Error("Commit of a staged version from a closed store succeeded")
	}
	check(t, s)
}

func TestAbortRemovesRows(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "node.db"))
	sv, _ := s.BeginVersion("loans")
	stageRows(t, sv, "a", "b")
	if err := sv.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := sv.Commit(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Abort = %v, want ErrClosed", err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRows).ForEachBucket(func(k []byte) error {
			t.Errorf("row set %x still present after Abort", k)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, s)
}

func TestDropKeepsVersionSequence(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "node.db"))
	for i := 0; i < 2; i++ {
		sv, _ := s.BeginVersion("loans")
		stageRows(t, sv, "a")
		if _, err := sv.Commit(nil); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DropDataset("loans")
	if err != nil || n != 2 {
		t.Fatalf("DropDataset = %d, %v; want 2", n, err)
	}
	if _, err := s.DropDataset("loans"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DropDataset = %v, want ErrNotFound", err)
	}
	if names, _ := s.DatasetNames(); len(names) != 0 {
		t.Errorf("DatasetNames after drop = %v, want none", names)
	}
	if _, err := s.ReadRows("loans", 1, 0, make([]Row, 1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadRows of a dropped version = %v, want ErrNotFound", err)
	}
	sv, _ := s.BeginVersion("loans")
	stageRows(t, sv, "b")
	dv, err := sv.Commit(nil)
	if err != nil || dv.Version != 3 {
		t.Errorf("Commit after drop = version %d, %v; want 3 (numbers are never reused)", dv.Version, err)
	}
	check(t, s)
}

func TestEncodeUint64SortsNumerically(t *testing.T) {
	for _, tc := range []struct{ a, b uint64 }{{1, 2}, {255, 256}, {1 << 32, 1<<32 + 1}, {0, ^uint64(0)}} {
		if bytes.Compare(EncodeUint64(tc.a), EncodeUint64(tc.b)) >= 0 {
			t.Errorf("EncodeUint64(%d) does not sort before EncodeUint64(%d)", tc.a, tc.b)
		}
		if got, err := DecodeUint64(EncodeUint64(tc.b)); err != nil || got != tc.b {
			t.Errorf("DecodeUint64(EncodeUint64(%d)) = %d, %v", tc.b, got, err)
		}
	}
	if _, err := DecodeUint64([]byte{1, 2}); err == nil {
		t.Error("DecodeUint64 of 2 bytes succeeded, want an error")
	}
}
