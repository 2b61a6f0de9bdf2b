// Package apitest has a fake api.Backend and helpers that serve it, for
// tests of the API, its client and the CLI.
package apitest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"xnode/node/api"
	"xnode/node/config"
	"xnode/node/datasets"
)

// Token is the bearer token Serve's server wants.
const Token = "test-token-0123456789abcdef"

// Fake is an in-memory api.Backend. Its fields may be set before use; the
// Func hooks, when set, replace the default behaviour of their method.
type Fake struct {
	// mu guards every field below.
	mu sync.Mutex

	Info     api.NodeInfo
	PeerList []api.PeerInfo
	// Datasets holds every version of each dataset, oldest first.
	Datasets map[string][]datasets.Info
	Queries  map[string]api.Query
	// Err, if set, is returned by every method.
	Err error

	// Imports and Submits record the requests received.
	Imports []api.ImportRequest
	Submits []api.QueryRequest

	// ImportFunc replaces ImportDataset's default, which reports progress
	// in three steps and adds a version with 10 rows.
	ImportFunc func(ctx context.Context, req api.ImportRequest, progress func(done, total int64)) (*datasets.Report, error)
	// Finish is applied to a running query by the GetQuery that sees it
	// for the PollsToFinish-th time (default 1); by default the query
	// becomes done with an empty result.
	Finish        func(q *api.Query)
	PollsToFinish int
	polls         map[string]int
	nextID        int
}

var _ api.Backend = (*Fake)(nil)

// NewFake returns a Fake with a node called "alpha" and one peer "beta".
func NewFake() *Fake {
	return &Fake{
		Info: api.NodeInfo{Name: "alpha", PeerID: "12D3KooWAlpha", Addrs: []string{"/ip4/127.0.0.1/tcp/7400"},
			API: "127.0.0.1:7401", Consortium: "pilot", Org: "Alpha Bank", Roles: []string{"querier"}, Version: "test"},
		PeerList: []api.PeerInfo{{Name: "beta", PeerID: "12D3KooWBeta", Addr: "/ip4/127.0.0.1/tcp/7410/p2p/12D3KooWBeta",
			Connected: true, Verified: true, Org: "Beta Bank"}},
		Datasets: map[string][]datasets.Info{},
		Queries:  map[string]api.Query{},
	}
}

// NodeInfo implements api.Backend.
func (f *Fake) NodeInfo(ctx context.Context) (api.NodeInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Info, f.Err
}

// Peers implements api.Backend.
func (f *Fake) Peers(ctx context.Context) ([]api.PeerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	return slices.Clone(f.PeerList), nil
}

// AddPeer implements api.Backend: a name already known is a conflict and
// an address without /p2p/ is invalid.
func (f *Fake) AddPeer(ctx context.Context, req api.AddPeerRequest) (api.PeerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return api.PeerInfo{}, f.Err
	}
	for _, p := range f.PeerList {
		if p.Name == req.Name {
			return api.PeerInfo{}, fmt.Errorf("peer %q is already configured: %w", req.Name, api.ErrConflict)
		}
	}
	_, id, ok := strings.Cut(req.Addr, "/p2p/")
	if !ok || id == "" {
		return api.PeerInfo{}, fmt.Errorf("address %q does not end in /p2p/<peer ID>: %w", req.Addr, api.ErrInvalid)
	}
	p := api.PeerInfo{Name: req.Name, PeerID: id, Addr: req.Addr}
	f.PeerList = append(f.PeerList, p)
	return p, nil
}

// ImportDataset implements api.Backend.
func (f *Fake) ImportDataset(ctx context.Context, req api.ImportRequest, progress func(done, total int64)) (*datasets.Report, error) {
	f.mu.Lock()
	f.Imports = append(f.Imports, req)
	hook, err := f.ImportFunc, f.Err
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var rep *datasets.Report
	if hook != nil {
		rep, err = hook(ctx, req, progress)
	} else {
		for _, done := range []int64{100, 200, 300} {
			progress(done, 300)
		}
		rep = &datasets.Report{Name: req.Name, Source: filepath.Base(req.File), RowsRead: 10, Imported: 10, IDKind: req.IDKind}
	}
	if err != nil || rep == nil {
		return rep, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := f.Datasets[req.Name]
	rep.Version = uint64(len(vs) + 1)
	f.Datasets[req.Name] = append(vs, datasets.Info{Name: req.Name, Version: rep.Version, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Rows: rep.Imported, IDKind: rep.IDKind, IDColumns: req.IDColumns, Columns: rep.Columns, Source: rep.Source,
		Format: datasets.Format(req.Format), Encoding: req.Encoding, RowsRead: rep.RowsRead, Duplicates: rep.Duplicates, Invalid: rep.Invalid})
	return rep, nil
}

// ListDatasets implements api.Backend.
func (f *Fake) ListDatasets(ctx context.Context) ([]datasets.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	var out []datasets.Info
	for _, vs := range f.Datasets {
		out = append(out, vs[len(vs)-1])
	}
	slices.SortFunc(out, func(a, b datasets.Info) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ShowDataset implements api.Backend.
func (f *Fake) ShowDataset(ctx context.Context, name string) (api.DatasetDetail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return api.DatasetDetail{}, f.Err
	}
	vs, ok := f.Datasets[name]
	if !ok {
		return api.DatasetDetail{}, fmt.Errorf("dataset %q not found; `xnode dataset list` shows the datasets: %w", name, api.ErrNotFound)
	}
	return api.DatasetDetail{Info: vs[len(vs)-1], Versions: slices.Clone(vs)}, nil
}

// DropDataset implements api.Backend.
func (f *Fake) DropDataset(ctx context.Context, name string) (api.DropResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return api.DropResult{}, f.Err
	}
	vs, ok := f.Datasets[name]
	if !ok {
		return api.DropResult{}, fmt.Errorf("dataset %q not found: %w", name, api.ErrNotFound)
	}
	delete(f.Datasets, name)
	return api.DropResult{Name: name, Versions: len(vs)}, nil
}

// SubmitQuery implements api.Backend: the dataset must exist and the
// query starts running.
func (f *Fake) SubmitQuery(ctx context.Context, req api.QueryRequest) (api.Query, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Submits = append(f.Submits, req)
	if f.Err != nil {
		return api.Query{}, f.Err
	}
	vs, ok := f.Datasets[req.Dataset]
	if !ok {
		return api.Query{}, fmt.Errorf("dataset %q not found; import it first: %w", req.Dataset, api.ErrInvalid)
	}
	f.nextID++
	q := api.Query{ID: fmt.Sprintf("q%d", f.nextID), Kind: req.Kind, Role: "querier", Status: api.StatusRunning,
		Dataset: req.Dataset, DatasetVersion: vs[len(vs)-1].Version, Peers: req.Peers, PeerDataset: req.PeerDataset,
		Suite: req.Suite, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Progress: &api.Progress{Peer: req.Peers[0], Phase: "blind", Done: 1, Total: 2}}
	f.Queries[q.ID] = q
	return q, nil
}

// ListQueries implements api.Backend.
func (f *Fake) ListQueries(ctx context.Context) ([]api.Query, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	var out []api.Query
	for _, q := range f.Queries {
		out = append(out, q)
	}
	slices.SortFunc(out, func(a, b api.Query) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// GetQuery implements api.Backend.
func (f *Fake) GetQuery(ctx context.Context, id string) (api.Query, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return api.Query{}, f.Err
	}
	q, ok := f.Queries[id]
	if !ok {
		return api.Query{}, fmt.Errorf("query %q not found; `xnode query list` shows the queries: %w", id, api.ErrNotFound)
	}
	if q.Status == api.StatusRunning || q.Status == api.StatusPending {
		if f.polls == nil {
			f.polls = map[string]int{}
		}
		f.polls[id]++
		if f.polls[id] >= max(f.PollsToFinish, 1) {
			q.Progress = nil
			q.Finished = q.Created.Add(time.Second)
			if f.Finish != nil {
				f.Finish(&q)
			} else {
				q.Status = api.StatusDone
			}
			f.Queries[id] = q
		}
	}
	return q, nil
}

// Serve serves f through api.NewServer on an httptest server that wants
// Token; it is closed when the test ends.
func Serve(t testing.TB, f api.Backend, opts ...api.Option) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(api.NewServer(f, Token, nil, opts...))
	t.Cleanup(srv.Close)
	return srv
}

// DataDir writes a data dir whose config.toml's api is srv's address and
// whose api.token is Token, and returns its path.
func DataDir(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default("alpha")
	cfg.API = strings.TrimPrefix(srv.URL, "http://")
	if err := config.Save(dir, cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, config.TokenFile), []byte(Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}
