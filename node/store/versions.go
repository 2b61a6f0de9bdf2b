package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Sub-buckets of one row set.
var (
	subPositions = []byte("p") // position → uvarint(len key) | key | value
	subKeys      = []byte("k") // key → position
)

// DatasetVersion describes one committed, immutable version of a dataset.
type DatasetVersion struct {
	Name    string
	Version uint64    // 1, 2, 3, … per name; never reused, even after a drop
	Created time.Time // commit time, UTC
	Rows    uint64    // number of rows (unique keys)
	Meta    []byte    // the importer's metadata, opaque to the store

	rowset uint64
}

// NewRow is one row handed to StagedVersion.Append.
type NewRow struct {
	Key   []byte // unique within the version (the namespaced identifier)
	Value []byte // opaque row record
}

// Row is one stored row. Pos is its 0-based position in import order.
type Row struct {
	Pos   uint64
	Key   []byte
	Value []byte
}

// StagedVersion is an import in progress: its rows are stored but no reader
// can see them until Commit. Its methods are safe for concurrent use but are
// meant to be called from one goroutine.
type StagedVersion struct {
	s      *Store
	name   string
	rowset uint64

	// mu guards the fields below.
	mu   sync.Mutex
	n    uint64 // rows appended so far
	done bool
}

// BeginVersion starts staging a new version of the named dataset. Call
// Append for each chunk of rows, then Commit or Abort.
func (s *Store) BeginVersion(name string) (*StagedVersion, error) {
	if name == "" {
		return nil, errors.New("dataset name is empty")
	}
	var id uint64
	err := s.update(func(tx *bolt.Tx) error {
		rows := tx.Bucket(bucketRows)
		var err error
		if id, err = rows.NextSequence(); err != nil {
			return err
		}
		rs, err := rows.CreateBucket(EncodeUint64(id))
		if err != nil {
			return err
		}
		if _, err := rs.CreateBucket(subPositions); err != nil {
			return err
		}
		if _, err := rs.CreateBucket(subKeys); err != nil {
			return err
		}
		return tx.Bucket(bucketStaged).Put(EncodeUint64(id), []byte(name))
	})
	if err != nil {
		return nil, fmt.Errorf("failed to stage a version of dataset %q: %w", name, err)
	}
	return &StagedVersion{s: s, name: name, rowset: id}, nil
}

// Append stores rows in one transaction. A row whose key is already staged
// (earlier in this call or in an earlier one) is not stored: its index in
// rows is returned in dups. Positions are assigned in order to the rows kept.
func (sv *StagedVersion) Append(rows []NewRow) (dups []int, err error) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.done {
		return nil, ErrClosed
	}
	n := sv.n
	err = sv.s.update(func(tx *bolt.Tx) error {
		rs := tx.Bucket(bucketRows).Bucket(EncodeUint64(sv.rowset))
		if rs == nil {
			return fmt.Errorf("staged rows of dataset %q are gone", sv.name)
		}
		pos, keys := rs.Bucket(subPositions), rs.Bucket(subKeys)
		pos.FillPercent = 1 // positions are appended in order
		// bbolt keeps the key and value slices until the transaction
		// commits, so each row's bytes get their own region of one arena
		// that is only ever appended to.
		size := 0
		for _, r := range rows {
			size += 8 + binary.MaxVarintLen64 + len(r.Key) + len(r.Value)
		}
		arena := make([]byte, 0, size)
		for i, r := range rows {
			if len(r.Key) == 0 {
				return fmt.Errorf("row %d has an empty key", i)
			}
			if keys.Get(r.Key) != nil {
				dups = append(dups, i)
				continue
			}
			start := len(arena)
			arena = binary.BigEndian.AppendUint64(arena, n)
			pk := arena[start:len(arena):len(arena)]
			start = len(arena)
			arena = binary.AppendUvarint(arena, uint64(len(r.Key)))
			arena = append(arena, r.Key...)
			arena = append(arena, r.Value...)
			if err := pos.Put(pk, arena[start:len(arena):len(arena)]); err != nil {
				return err
			}
			if err := keys.Put(r.Key, pk); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to stage rows of dataset %q: %w", sv.name, err)
	}
	sv.n = n
	return dups, nil
}

// Len returns the number of rows staged so far.
func (sv *StagedVersion) Len() uint64 {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.n
}

// Commit makes the staged rows visible as the dataset's next version, in one
// transaction, and returns it.
func (sv *StagedVersion) Commit(meta []byte) (DatasetVersion, error) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.done {
		return DatasetVersion{}, ErrClosed
	}
	dv := DatasetVersion{
		Name:    sv.name,
		Created: time.Now().UTC().Truncate(time.Microsecond),
		Rows:    sv.n,
		Meta:    clone(meta),
		rowset:  sv.rowset,
	}
	err := sv.s.update(func(tx *bolt.Tx) error {
		staged := tx.Bucket(bucketStaged)
		if staged.Get(EncodeUint64(sv.rowset)) == nil {
			return fmt.Errorf("staged rows are gone")
		}
		ds, err := tx.Bucket(bucketDatasets).CreateBucketIfNotExists([]byte(sv.name))
		if err != nil {
			return err
		}
		if dv.Version, err = ds.NextSequence(); err != nil {
			return err
		}
		if err := ds.Put(EncodeUint64(dv.Version), encodeVersion(dv)); err != nil {
			return err
		}
		return staged.Delete(EncodeUint64(sv.rowset))
	})
	if err != nil {
		return DatasetVersion{}, fmt.Errorf("failed to commit a version of dataset %q: %w", sv.name, err)
	}
	sv.done = true
	return dv, nil
}

// Abort deletes the staged rows. It is safe to call after Commit (it then
// does nothing) and more than once.
func (sv *StagedVersion) Abort() error {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.done {
		return nil
	}
	err := sv.s.update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketRows).DeleteBucket(EncodeUint64(sv.rowset)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		return tx.Bucket(bucketStaged).Delete(EncodeUint64(sv.rowset))
	})
	if err != nil {
		return fmt.Errorf("failed to discard the staged import of dataset %q: %w", sv.name, err)
	}
	sv.done = true
	return nil
}

// version header: format byte 1 | version | created unix ns | rows | rowset | meta
const versionFormat = 1

func encodeVersion(dv DatasetVersion) []byte {
	b := make([]byte, 1+4*8, 1+4*8+len(dv.Meta))
	b[0] = versionFormat
	putUint64(b[1:], dv.Version)
	putUint64(b[9:], uint64(dv.Created.UnixNano()))
	putUint64(b[17:], dv.Rows)
	putUint64(b[25:], dv.rowset)
	return append(b, dv.Meta...)
}

func decodeVersion(name string, b []byte) (DatasetVersion, error) {
	if len(b) < 33 || b[0] != versionFormat {
		return DatasetVersion{}, fmt.Errorf("corrupt header of dataset %q", name)
	}
	return DatasetVersion{
		Name:    name,
		Version: getUint64(b[1:]),
		Created: time.Unix(0, int64(getUint64(b[9:]))).UTC(),
		Rows:    getUint64(b[17:]),
		rowset:  getUint64(b[25:]),
		Meta:    clone(b[33:]),
	}, nil
}

// DatasetNames returns the names of all datasets that have at least one
// version, in byte order.
func (s *Store) DatasetNames() ([]string, error) {
	var names []string
	err := s.db.View(func(tx *bolt.Tx) error {
		ds := tx.Bucket(bucketDatasets)
		return ds.ForEachBucket(func(name []byte) error {
			if first, _ := ds.Bucket(name).Cursor().First(); first != nil {
				names = append(names, string(name))
			}
			return nil
		})
	})
	return names, err
}

// DatasetVersions returns every version of a dataset, oldest first, or an
// error wrapping ErrNotFound if it has none.
func (s *Store) DatasetVersions(name string) ([]DatasetVersion, error) {
	var out []DatasetVersion
	err := s.db.View(func(tx *bolt.Tx) error {
		ds := tx.Bucket(bucketDatasets).Bucket([]byte(name))
		if ds == nil {
			return nil
		}
		return ds.ForEach(func(_, v []byte) error {
			dv, err := decodeVersion(name, v)
			out = append(out, dv)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dataset %q: %w", name, ErrNotFound)
	}
	return out, nil
}

// DatasetVersion returns one version of a dataset; version 0 means the
// latest. The error wraps ErrNotFound if there is no such version.
func (s *Store) DatasetVersion(name string, version uint64) (dv DatasetVersion, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		dv, err = versionLocked(tx, name, version)
		return err
	})
	return dv, err
}

func versionLocked(tx *bolt.Tx, name string, version uint64) (DatasetVersion, error) {
	var v []byte
	if ds := tx.Bucket(bucketDatasets).Bucket([]byte(name)); ds != nil {
		if version == 0 {
			_, v = ds.Cursor().Last()
		} else {
			v = ds.Get(EncodeUint64(version))
		}
	}
	if v == nil {
		if version == 0 {
			return DatasetVersion{}, fmt.Errorf("dataset %q: %w", name, ErrNotFound)
		}
		return DatasetVersion{}, fmt.Errorf("dataset %q version %d: %w", name, version, ErrNotFound)
	}
	return decodeVersion(name, v)
}

// DropDataset deletes every version of a dataset and its rows, and returns
// how many versions it deleted. Version numbers are not reused: the next
// import of the same name continues the sequence, so a query that recorded
// (name, version) never silently refers to other data.
func (s *Store) DropDataset(name string) (int, error) {
	var n int
	err := s.update(func(tx *bolt.Tx) error {
		ds := tx.Bucket(bucketDatasets).Bucket([]byte(name))
		if ds == nil {
			return fmt.Errorf("dataset %q: %w", name, ErrNotFound)
		}
		var keys [][]byte
		var rowsets []uint64
		if err := ds.ForEach(func(k, v []byte) error {
			dv, err := decodeVersion(name, v)
			keys = append(keys, clone(k))
			rowsets = append(rowsets, dv.rowset)
			return err
		}); err != nil {
			return err
		}
		if len(keys) == 0 {
			return fmt.Errorf("dataset %q: %w", name, ErrNotFound)
		}
		rows := tx.Bucket(bucketRows)
		for i, k := range keys {
			if err := rows.DeleteBucket(EncodeUint64(rowsets[i])); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
			if err := ds.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("failed to drop dataset %q: %w", name, err)
	}
	return n, nil
}

// rowsetLocked finds the row set of a committed version.
func rowsetLocked(tx *bolt.Tx, name string, version uint64) (pos, keys *bolt.Bucket, err error) {
	if version == 0 {
		return nil, nil, fmt.Errorf("dataset %q: version must be set to read rows", name)
	}
	dv, err := versionLocked(tx, name, version)
	if err != nil {
		return nil, nil, err
	}
	rs := tx.Bucket(bucketRows).Bucket(EncodeUint64(dv.rowset))
	if rs == nil {
		return nil, nil, fmt.Errorf("rows of dataset %q version %d: %w", name, version, ErrNotFound)
	}
	return rs.Bucket(subPositions), rs.Bucket(subKeys), nil
}

// ReadRows fills dst with the rows at positions from, from+1, … of a
// committed version in one read transaction, and returns how many it filled.
// It reuses the Key and Value slices already in dst. At the end of the rows
// it returns 0, io.EOF.
func (s *Store) ReadRows(name string, version, from uint64, dst []Row) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		pos, _, err := rowsetLocked(tx, name, version)
		if err != nil {
			return err
		}
		c := pos.Cursor()
		for k, v := c.Seek(EncodeUint64(from)); k != nil && n < len(dst); k, v = c.Next() {
			if err := decodeRowInto(&dst[n], k, v); err != nil {
				return fmt.Errorf("dataset %q version %d: %w", name, version, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// RowAt returns the row at a position of a committed version.
func (s *Store) RowAt(name string, version, pos uint64) (Row, error) {
	var r Row
	err := s.db.View(func(tx *bolt.Tx) error {
		pb, _, err := rowsetLocked(tx, name, version)
		if err != nil {
			return err
		}
		k := EncodeUint64(pos)
		v := pb.Get(k)
		if v == nil {
			return fmt.Errorf("dataset %q version %d row %d: %w", name, version, pos, ErrNotFound)
		}
		return decodeRowInto(&r, k, v)
	})
	return r, err
}

// RowByKey returns the row with the given key in a committed version.
func (s *Store) RowByKey(name string, version uint64, key []byte) (Row, error) {
	var r Row
	err := s.db.View(func(tx *bolt.Tx) error {
		pb, kb, err := rowsetLocked(tx, name, version)
		if err != nil {
			return err
		}
		p := kb.Get(key)
		if p == nil {
			return fmt.Errorf("key in dataset %q version %d: %w", name, version, ErrNotFound)
		}
		v := pb.Get(p)
		if v == nil {
			return fmt.Errorf("dataset %q version %d: key points at a missing row", name, version)
		}
		return decodeRowInto(&r, p, v)
	})
	return r, err
}

func decodeRowInto(r *Row, k, v []byte) error {
	if len(k) != 8 {
		return errors.New("corrupt row position")
	}
	kl, n := binary.Uvarint(v)
	if n <= 0 || kl > uint64(len(v)-n) {
		return errors.New("corrupt row record")
	}
	r.Pos = getUint64(k)
	r.Key = append(r.Key[:0], v[n:n+int(kl)]...)
	r.Value = append(r.Value[:0], v[n+int(kl):]...)
	return nil
}
