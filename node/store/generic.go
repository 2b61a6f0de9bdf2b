package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Bucket names a bucket of the generic key/value API.
type Bucket string

// The buckets other services own. Their values are opaque bytes.
const (
	Queries   Bucket = "queries"   // query state, parameters, results
	Approvals Bucket = "approvals" // approval decisions
	Audit     Bucket = "audit"     // the audit chain
	OPRF      Bucket = "oprf"      // OPRF keys and published encodings per epoch
	Budgets   Bucket = "budgets"   // privacy and evaluation budgets
	Plugins   Bucket = "plugins"   // installed query plugins: name, version, digest, path
)

var genericBuckets = []Bucket{Queries, Approvals, Audit, OPRF, Budgets, Plugins}

// Tx is a transaction over the generic buckets, passed to Update and View
// callbacks. It must not be used after the callback returns.
type Tx struct {
	tx *bolt.Tx
}

// Update runs fn in a read-write transaction. If fn returns an error nothing
// it wrote is kept; otherwise everything is committed (and fsynced) at once.
func (s *Store) Update(fn func(tx *Tx) error) error {
	return s.update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(tx *Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

func (tx *Tx) bucket(b Bucket) (*bolt.Bucket, error) {
	for _, g := range genericBuckets {
		if g == b {
			return tx.tx.Bucket([]byte(b)), nil
		}
	}
	return nil, fmt.Errorf("unknown store bucket %q", string(b))
}

// Get returns a copy of the value at key, or an error wrapping ErrNotFound.
func (tx *Tx) Get(b Bucket, key []byte) ([]byte, error) {
	bk, err := tx.bucket(b)
	if err != nil {
		return nil, err
	}
	v := bk.Get(key)
	if v == nil {
		return nil, fmt.Errorf("key %x in bucket %s: %w", key, b, ErrNotFound)
	}
	return clone(v), nil
}

// Put stores value at key, replacing any previous value.
func (tx *Tx) Put(b Bucket, key, value []byte) error {
	bk, err := tx.bucket(b)
	if err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	return bk.Put(key, value)
}

// Delete removes key. Deleting a missing key is not an error.
func (tx *Tx) Delete(b Bucket, key []byte) error {
	bk, err := tx.bucket(b)
	if err != nil {
		return err
	}
	return bk.Delete(key)
}

// ForEach calls fn for every key in order. k and v are copies the callback
// may keep. An error from fn stops the walk and is returned.
func (tx *Tx) ForEach(b Bucket, fn func(k, v []byte) error) error {
	return tx.ForEachPrefix(b, nil, fn)
}

// ForEachPrefix calls fn, in key order, for every key that starts with prefix.
func (tx *Tx) ForEachPrefix(b Bucket, prefix []byte, fn func(k, v []byte) error) error {
	bk, err := tx.bucket(b)
	if err != nil {
		return err
	}
	c := bk.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(clone(k), clone(v)); err != nil {
			return err
		}
	}
	return nil
}

// Last returns copies of the last key and value in the bucket, or an error
// wrapping ErrNotFound if it is empty.
func (tx *Tx) Last(b Bucket) (k, v []byte, err error) {
	bk, err := tx.bucket(b)
	if err != nil {
		return nil, nil, err
	}
	k, v = bk.Cursor().Last()
	if k == nil {
		return nil, nil, fmt.Errorf("bucket %s is empty: %w", b, ErrNotFound)
	}
	return clone(k), clone(v), nil
}

// NextSequence returns the bucket's next sequence number (1, 2, 3, …).
// Use EncodeUint64 on it for a key that sorts in insertion order.
func (tx *Tx) NextSequence(b Bucket) (uint64, error) {
	bk, err := tx.bucket(b)
	if err != nil {
		return 0, err
	}
	return bk.NextSequence()
}

// Get returns a copy of the value at key in its own transaction.
func (s *Store) Get(b Bucket, key []byte) (v []byte, err error) {
	err = s.View(func(tx *Tx) error { v, err = tx.Get(b, key); return err })
	return v, err
}

// Put stores value at key in its own transaction.
func (s *Store) Put(b Bucket, key, value []byte) error {
	return s.Update(func(tx *Tx) error { return tx.Put(b, key, value) })
}

// Delete removes key in its own transaction.
func (s *Store) Delete(b Bucket, key []byte) error {
	return s.Update(func(tx *Tx) error { return tx.Delete(b, key) })
}

// ForEach walks the bucket in one read transaction; see Tx.ForEach.
func (s *Store) ForEach(b Bucket, fn func(k, v []byte) error) error {
	return s.View(func(tx *Tx) error { return tx.ForEach(b, fn) })
}

// ForEachPrefix walks keys with a prefix in one read transaction.
func (s *Store) ForEachPrefix(b Bucket, prefix []byte, fn func(k, v []byte) error) error {
	return s.View(func(tx *Tx) error { return tx.ForEachPrefix(b, prefix, fn) })
}

// NextSequence returns the bucket's next sequence number in its own
// transaction.
func (s *Store) NextSequence(b Bucket) (n uint64, err error) {
	err = s.Update(func(tx *Tx) error { n, err = tx.NextSequence(b); return err })
	return n, err
}
