package datasets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"xnode/node/store"
)

// ErrNotFound is wrapped by errors for a dataset or version that does not
// exist (it is store.ErrNotFound).
var ErrNotFound = store.ErrNotFound

// Service imports datasets into the store and reads them back. It is safe
// for concurrent use.
type Service struct {
	st  *store.Store
	log *slog.Logger
}

// New returns a Service over st. A nil logger discards.
func New(st *store.Store, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, log: log}
}

// Info describes one version of a dataset.
type Info struct {
	Name      string    `json:"name"`
	Version   uint64    `json:"version"`
	Created   time.Time `json:"created"`
	Rows      int64     `json:"rows"`
	IDKind    string    `json:"id_kind"`
	IDColumns []string  `json:"id_columns"`
	// Columns are the value columns then the label columns, in the order
	// of every row's Values.
	Columns  []Column `json:"columns"`
	Source   string   `json:"source"` // base name of the imported file
	Format   Format   `json:"format"`
	Encoding string   `json:"encoding"`
	// What the import saw: RowsRead = Rows + Duplicates + Invalid.
	RowsRead   int64 `json:"rows_read"`
	Duplicates int64 `json:"duplicates"`
	Invalid    int64 `json:"invalid"`
}

// versionMeta is Info's part that the store keeps as opaque bytes.
type versionMeta struct {
	IDKind     string   `json:"id_kind"`
	IDColumns  []string `json:"id_columns"`
	Columns    []Column `json:"columns"`
	Source     string   `json:"source"`
	Format     Format   `json:"format"`
	Encoding   string   `json:"encoding"`
	RowsRead   int64    `json:"rows_read"`
	Duplicates int64    `json:"duplicates"`
	Invalid    int64    `json:"invalid"`
}

func infoFromVersion(dv store.DatasetVersion) (Info, error) {
	var m versionMeta
	if err := json.Unmarshal(dv.Meta, &m); err != nil {
		return Info{}, fmt.Errorf("dataset %q version %d has corrupt metadata: %w", dv.Name, dv.Version, err)
	}
	return Info{
		Name: dv.Name, Version: dv.Version, Created: dv.Created, Rows: int64(dv.Rows),
		IDKind: m.IDKind, IDColumns: m.IDColumns, Columns: m.Columns,
		Source: m.Source, Format: m.Format, Encoding: m.Encoding,
		RowsRead: m.RowsRead, Duplicates: m.Duplicates, Invalid: m.Invalid,
	}, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidName reports whether name can name a dataset: 1-64 letters, digits,
// '.', '_' or '-', starting with a letter or digit.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("dataset name %q is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func notFound(name string, version uint64, err error) error {
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if version == 0 {
		return fmt.Errorf("dataset %q not found; `xnode dataset list` shows the datasets: %w", name, ErrNotFound)
	}
	return fmt.Errorf("dataset %q has no version %d; `xnode dataset show %s` shows the latest: %w", name, version, name, ErrNotFound)
}

// List returns the latest version of every dataset, by name.
func (s *Service) List(ctx context.Context) ([]Info, error) {
	names, err := s.st.DatasetNames()
	if err != nil {
		return nil, fmt.Errorf("failed to list datasets: %w", err)
	}
	out := make([]Info, 0, len(names))
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info, err := s.Show(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue // dropped meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// Show returns the latest version of a dataset.
func (s *Service) Show(ctx context.Context, name string) (Info, error) {
	return s.version(ctx, name, 0)
}

func (s *Service) version(ctx context.Context, name string, version uint64) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	dv, err := s.st.DatasetVersion(name, version)
	if err != nil {
		return Info{}, notFound(name, version, err)
	}
	return infoFromVersion(dv)
}

// Versions returns every version of a dataset, oldest first.
func (s *Service) Versions(ctx context.Context, name string) ([]Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dvs, err := s.st.DatasetVersions(name)
	if err != nil {
		return nil, notFound(name, 0, err)
	}
	out := make([]Info, len(dvs))
	for i, dv := range dvs {
		if out[i], err = infoFromVersion(dv); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Drop deletes every version of a dataset and returns how many it deleted.
// Version numbers are not reused by a later import of the same name.
func (s *Service) Drop(ctx context.Context, name string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n, err := s.st.DropDataset(name)
	if err != nil {
		return 0, notFound(name, 0, err)
	}
	s.log.Info("dropped dataset", "dataset", name, "versions", n)
	return n, nil
}
