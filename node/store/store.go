package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version this build writes. A store with a
// lower version is migrated at Open; a store with a higher one is refused.
const SchemaVersion = 1

// DefaultTimeout is how long Open waits for another process to release the
// file lock.
const DefaultTimeout = time.Second

// ErrNotFound is returned (possibly wrapped) when a key, dataset, version or
// row does not exist.
var ErrNotFound = errors.New("not found")

// ErrLocked is wrapped by the error Open returns when another process holds
// the store's file lock.
var ErrLocked = errors.New("store is locked by another process")

// ErrClosed is returned by a StagedVersion after Commit or Abort.
var ErrClosed = errors.New("staged version already committed or aborted")

// ErrDiskFull is wrapped by the error a write returns when the store file
// found no room: its disk is full, a disk quota is reached, or the
// process's file-size limit (RLIMIT_FSIZE, `ulimit -f`) stops it. The
// write's transaction is rolled back; the file stays consistent and the
// store usable, and the write succeeds once there is room.
var ErrDiskFull = errors.New("no room to write the store")

// Internal bucket names. They are not reachable through the generic API.
var (
	bucketMeta     = []byte("meta")
	bucketDatasets = []byte("datasets")
	bucketRows     = []byte("rows")
	bucketStaged   = []byte("staged")

	keySchemaVersion = []byte("schema_version")
)

// Store is an open node database. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	log  *slog.Logger
}

// Option configures Open.
type Option func(*config)

type config struct {
	timeout    time.Duration
	log        *slog.Logger
	schema     uint64
	migrations []migration
}

// WithTimeout sets how long Open waits for the file lock (default 1s).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithLogger sets the logger for recovery and migration messages.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// migration upgrades a store from version to-1 to version to. It runs inside
// Open's transaction, before missing buckets are created.
type migration struct {
	to   uint64
	name string
	up   func(tx *bolt.Tx) error
}

// migrations lists every schema upgrade in order. Schema 1 is the first
// layout, so the list is empty; add {to: 2, …} when the layout changes and
// bump SchemaVersion.
var migrations []migration

// Open opens (creating if needed) the store file at path, with mode 0600 in
// a directory created with mode 0700. It removes row sets left staged by an
// interrupted import.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := config{timeout: DefaultTimeout, schema: SchemaVersion, migrations: migrations}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("failed to create the store directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: cfg.timeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, &lockedError{path: path}
		}
		return nil, fmt.Errorf("failed to open the store at %s: %w", path, err)
	}
	s := &Store{db: db, path: path, log: cfg.log}
	if err := s.update(func(tx *bolt.Tx) error { return s.initLocked(tx, cfg) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("failed to open the store at %s: %w", path, err)
	}
	return s, nil
}

type lockedError struct{ path string }

func (e *lockedError) Error() string {
	return fmt.Sprintf("the store at %s is locked by another xnode process; stop it or use another --dir", e.path)
}

func (e *lockedError) Unwrap() error { return ErrLocked }

// update runs fn in a read-write transaction, like bolt's Update, and
// explains a commit that found no room.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	err := s.db.Update(fn)
	if err != nil && noRoom(err) {
		return &diskFullError{path: s.path, err: err}
	}
	return err
}

// noRoom reports whether err is a write's "no space", "quota" or
// "file too large" error. bbolt returns write and sync errors as they are,
// but flattens the error of growing the file to text ("file resize error:
// truncate …: file too large"), so that one is recognised by its text.
func noRoom(err error) bool {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG} {
		if errors.Is(err, errno) {
			return true
		}
		if msg := err.Error(); strings.HasPrefix(msg, "file resize error: ") && strings.HasSuffix(msg, ": "+errno.Error()) {
			return true
		}
	}
	return false
}

type diskFullError struct {
	path string
	err  error
}

func (e *diskFullError) Error() string {
	return fmt.Sprintf("no room to write the store at %s: the disk is full, or the node's file-size limit (ulimit -f) is reached (%v); "+
		"free disk space or raise the limit, then try again", e.path, e.err)
}

func (e *diskFullError) Unwrap() []error { return []error{ErrDiskFull, e.err} }

// initLocked runs in Open's write transaction: schema check, migrations,
// bucket creation, staged-import cleanup.
func (s *Store) initLocked(tx *bolt.Tx, cfg config) error {
	var have uint64
	if meta := tx.Bucket(bucketMeta); meta != nil {
		if v := meta.Get(keySchemaVersion); v != nil {
			n, err := DecodeUint64(v)
			if err != nil {
				return fmt.Errorf("corrupt schema version: %w", err)
			}
			have = n
		}
	}
	switch {
	case have > cfg.schema:
		return fmt.Errorf("store schema version %d is newer than this xnode supports (%d); upgrade xnode", have, cfg.schema)
	case have == 0:
		// A new file: nothing to migrate.
	default:
		for _, m := range cfg.migrations {
			if m.to <= have || m.to > cfg.schema {
				continue
			}
			if m.to != have+1 {
				return fmt.Errorf("no migration from schema %d to %d", have, m.to)
			}
			if err := m.up(tx); err != nil {
				return fmt.Errorf("migration to schema %d (%s) failed: %w", m.to, m.name, err)
			}
			s.log.Info("migrated store schema", "from", have, "to", m.to, "migration", m.name)
			have = m.to
		}
		if have != cfg.schema {
			return fmt.Errorf("no migration from schema %d to %d", have, cfg.schema)
		}
	}
	for _, name := range allBuckets() {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("failed to create bucket %q: %w", name, err)
		}
	}
	if err := tx.Bucket(bucketMeta).Put(keySchemaVersion, EncodeUint64(cfg.schema)); err != nil {
		return err
	}
	return s.removeStagedLocked(tx)
}

func allBuckets() [][]byte {
	out := [][]byte{bucketMeta, bucketDatasets, bucketRows, bucketStaged}
	for _, b := range genericBuckets {
		out = append(out, []byte(b))
	}
	return out
}

// removeStagedLocked deletes every row set that an interrupted import left
// staged.
func (s *Store) removeStagedLocked(tx *bolt.Tx) error {
	staged := tx.Bucket(bucketStaged)
	var ids [][]byte
	if err := staged.ForEach(func(k, v []byte) error {
		ids = append(ids, clone(k))
		id, _ := DecodeUint64(k)
		s.log.Info("removing a staged import left by an interrupted run", "dataset", string(v), "rowset", id)
		return nil
	}); err != nil {
		return err
	}
	rows := tx.Bucket(bucketRows)
	for _, k := range ids {
		if err := rows.DeleteBucket(k); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return fmt.Errorf("failed to remove staged rows: %w", err)
		}
		if err := staged.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Close closes the database file. It waits for open transactions and is safe
// to call twice.
func (s *Store) Close() error {
	return s.db.Close()
}

// Check verifies the consistency of the whole file (bbolt's page checker).
// It returns nil or every problem found, joined.
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// SchemaVersion returns the schema version recorded in the file.
func (s *Store) SchemaVersion() (uint64, error) {
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		v, err = DecodeUint64(tx.Bucket(bucketMeta).Get(keySchemaVersion))
		return err
	})
	return v, err
}

// EncodeUint64 returns n as an 8-byte big-endian key, so keys sort in
// numeric order.
func EncodeUint64(n uint64) []byte {
	b := make([]byte, 8)
	putUint64(b, n)
	return b
}

// DecodeUint64 reads an 8-byte big-endian key.
func DecodeUint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("integer key has %d bytes, want 8", len(b))
	}
	return getUint64(b), nil
}

func putUint64(b []byte, n uint64) { binary.BigEndian.PutUint64(b, n) }

func getUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// withSchema overrides the schema version and migrations; tests use it to
// exercise the migration path.
func withSchema(v uint64, m []migration) Option {
	return func(c *config) { c.schema, c.migrations = v, m }
}
