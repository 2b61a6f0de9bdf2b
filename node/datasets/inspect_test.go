package datasets

import (
	"testing"

	bolt "go.etcd.io/bbolt"
)

// stagedRowsets opens a closed store file directly and counts the row sets
// still marked staged and the row sets in total not belonging to a version.
// Only tests look inside the file like this; the node goes through package
// store.
func stagedRowsets(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	err = db.View(func(tx *bolt.Tx) error {
		staged := tx.Bucket([]byte("staged")).Stats().KeyN
		rowsets := 0
		if err := tx.Bucket([]byte("rows")).ForEachBucket(func([]byte) error { rowsets++; return nil }); err != nil {
			return err
		}
		if rowsets != staged {
			t.Errorf("%d row sets but %d staged markers and no committed versions", rowsets, staged)
		}
		n = staged
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
