// Package apitest has a fake api.Backend and helpers that serve it, for
// tests of the API, its client and the CLI.
package apitest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
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
	// Plugins are the installed plugins; NewFake installs the built-ins
	// overlap and match.
	Plugins []api.PluginInfo
	// AuditLog is the audit chain, oldest first; AuditReport, if its
	// Entries is not 0, is what VerifyAudit returns (otherwise an OK
	// report of the whole log).
	AuditLog    []api.AuditEntry
	AuditReport api.AuditReport
	// Err, if set, is returned by every method.
	Err error

	// Imports and Submits record the requests received.
	Imports  []api.ImportRequest
	Submits  []api.QueryRequest
	Installs []api.InstallPluginRequest

	// SubmitStatus is the status SubmitQuery gives a new query (default
	// running).
	SubmitStatus string
	// Steps are applied in turn to a querier's unfinished query by the
	// GetQuery calls that see it, one per call, before Finish and
	// PollsToFinish take over (polls are counted after the steps).
	Steps []func(q *api.Query)

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
		Plugins: []api.PluginInfo{
			builtin(api.KindOverlap, "psi.cardinality", "filter=COLUMN:VALUE\npeer_filter=COLUMN:VALUE"),
			builtin(api.KindMatch, "psi.intersection", "columns=C1,C2"),
		},
	}
}

// builtin describes a built-in plugin as the fake installs it.
func builtin(name, protocol, params string) api.PluginInfo {
	return api.PluginInfo{Name: name, Version: "1.0.0", Protocol: protocol, Digest: digest("xnode"),
		Path: "/usr/local/bin/xnode", Builtin: true, Params: params, Installed: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
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

// SubmitQuery implements api.Backend: the plugin must be installed and
// the dataset exist, and the query starts with SubmitStatus.
func (f *Fake) SubmitQuery(ctx context.Context, req api.QueryRequest) (api.Query, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Submits = append(f.Submits, req)
	if f.Err != nil {
		return api.Query{}, f.Err
	}
	name := req.Plugin
	if name == "" {
		name = req.Kind
	}
	i := slices.IndexFunc(f.Plugins, func(p api.PluginInfo) bool { return p.Name == name })
	if i < 0 {
		return api.Query{}, fmt.Errorf("plugin %q is not installed; `xnode plugin list` shows the installed plugins: %w", name, api.ErrInvalid)
	}
	p := f.Plugins[i]
	vs, ok := f.Datasets[req.Dataset]
	if !ok {
		return api.Query{}, fmt.Errorf("dataset %q not found; import it first: %w", req.Dataset, api.ErrInvalid)
	}
	status := f.SubmitStatus
	if status == "" {
		status = api.StatusRunning
	}
	f.nextID++
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	q := api.Query{ID: fmt.Sprintf("q%d", f.nextID), Kind: name, Role: "querier", Status: status,
		Plugin: &api.PluginRef{Name: p.Name, Version: p.Version, Digest: p.Digest}, Params: maps.Clone(req.Params),
		Protocol: p.Protocol, Querier: f.Info.Name,
		Dataset: req.Dataset, DatasetVersion: vs[len(vs)-1].Version, Peers: req.Peers, PeerDataset: req.PeerDataset,
		Suite: req.Suite, Created: created, Expires: created.Add(time.Hour)}
	for _, peer := range req.Peers {
		q.PeerStates = append(q.PeerStates, api.PeerState{Peer: peer, Status: status})
	}
	if status == api.StatusRunning {
		q.Progress = &api.Progress{Peer: req.Peers[0], Phase: "blind", Done: 1, Total: 2}
	}
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
	if !api.Finished(q.Status) && q.Role != "responder" {
		if f.polls == nil {
			f.polls = map[string]int{}
		}
		f.polls[id]++
		if n := f.polls[id]; n <= len(f.Steps) {
			f.Steps[n-1](&q)
			f.Queries[id] = q
		} else if n-len(f.Steps) >= max(f.PollsToFinish, 1) {
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

// PendingQueries implements api.Backend: the responder's queries awaiting
// approval.
func (f *Fake) PendingQueries(ctx context.Context) ([]api.Query, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	var out []api.Query
	for _, q := range f.Queries {
		if q.Role == "responder" && q.Status == api.StatusAwaitingApproval {
			out = append(out, q)
		}
	}
	slices.SortFunc(out, func(a, b api.Query) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// pendingLocked returns the pending query id; f.mu must be held.
func (f *Fake) pendingLocked(id string) (api.Query, error) {
	if f.Err != nil {
		return api.Query{}, f.Err
	}
	q, ok := f.Queries[id]
	if !ok {
		return api.Query{}, fmt.Errorf("query %q not found; `xnode query pending` shows the queries awaiting approval: %w", id, api.ErrNotFound)
	}
	if q.Status != api.StatusAwaitingApproval {
		return api.Query{}, fmt.Errorf("query %s is %s, not awaiting approval: %w", id, q.Status, api.ErrConflict)
	}
	return q, nil
}

// setOwnStateLocked sets this node's entry in q.PeerStates; f.mu must be
// held.
func (f *Fake) setOwnStateLocked(q *api.Query, st api.PeerState) {
	st.Peer = f.Info.Name
	for i := range q.PeerStates {
		if q.PeerStates[i].Peer == st.Peer {
			q.PeerStates[i] = st
			return
		}
	}
	q.PeerStates = append(q.PeerStates, st)
}

// ApproveQuery implements api.Backend: a query awaiting approval starts
// running.
func (f *Fake) ApproveQuery(ctx context.Context, id string) (api.Query, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q, err := f.pendingLocked(id)
	if err != nil {
		return api.Query{}, err
	}
	q.Status = api.StatusRunning
	f.setOwnStateLocked(&q, api.PeerState{Status: "approved", Rule: "manual"})
	f.Queries[id] = q
	return q, nil
}

// DenyQuery implements api.Backend: a query awaiting approval ends denied
// with the reason.
func (f *Fake) DenyQuery(ctx context.Context, id string, req api.DenyRequest) (api.Query, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q, err := f.pendingLocked(id)
	if err != nil {
		return api.Query{}, err
	}
	q.Status = api.StatusDenied
	q.Error = req.Reason
	q.Finished = q.Created.Add(time.Second)
	f.setOwnStateLocked(&q, api.PeerState{Status: api.StatusDenied, Rule: "manual", Reason: req.Reason})
	f.Queries[id] = q
	return q, nil
}

// ListPlugins implements api.Backend.
func (f *Fake) ListPlugins(ctx context.Context) ([]api.PluginInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	out := slices.Clone(f.Plugins)
	slices.SortFunc(out, func(a, b api.PluginInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// InstallPlugin implements api.Backend: a built-in must be overlap or
// match; a path must be an existing file, named after the plugin, and its
// digest is the SHA-256 of its content. Installing a name again replaces it.
func (f *Fake) InstallPlugin(ctx context.Context, req api.InstallPluginRequest) (api.PluginInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Installs = append(f.Installs, req)
	if f.Err != nil {
		return api.PluginInfo{}, f.Err
	}
	var p api.PluginInfo
	switch {
	case req.Builtin == api.KindOverlap:
		p = builtin(api.KindOverlap, "psi.cardinality", "")
	case req.Builtin == api.KindMatch:
		p = builtin(api.KindMatch, "psi.intersection", "")
	case req.Builtin != "":
		return api.PluginInfo{}, fmt.Errorf("there is no built-in plugin %q; the built-ins are overlap and match: %w", req.Builtin, api.ErrInvalid)
	default:
		b, err := os.ReadFile(req.Path)
		if err != nil {
			return api.PluginInfo{}, fmt.Errorf("cannot read plugin %s: %v: %w", req.Path, err, api.ErrInvalid)
		}
		sum := sha256.Sum256(b)
		p = api.PluginInfo{Name: strings.TrimSuffix(filepath.Base(req.Path), filepath.Ext(req.Path)), Version: "0.1.0",
			Protocol: "psi.cardinality", Digest: "sha256:" + hex.EncodeToString(sum[:]), Path: req.Path,
			Installed: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	}
	f.Plugins = slices.DeleteFunc(f.Plugins, func(q api.PluginInfo) bool { return q.Name == p.Name })
	f.Plugins = append(f.Plugins, p)
	return p, nil
}

// Audit implements api.Backend.
func (f *Fake) Audit(ctx context.Context, filter api.AuditFilter) ([]api.AuditEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	var out []api.AuditEntry
	for _, e := range f.AuditLog {
		if (filter.QueryID == "" || e.QueryID == filter.QueryID) && (filter.Kind == "" || e.Kind == filter.Kind) {
			out = append(out, e)
		}
	}
	if filter.Limit > 0 && len(out) > filter.Limit {
		out = out[len(out)-filter.Limit:]
	}
	return out, nil
}

// VerifyAudit implements api.Backend.
func (f *Fake) VerifyAudit(ctx context.Context) (api.AuditReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return api.AuditReport{}, f.Err
	}
	if f.AuditReport.Entries != 0 {
		return f.AuditReport, nil
	}
	rep := api.AuditReport{OK: true, Entries: uint64(len(f.AuditLog))}
	if n := len(f.AuditLog); n > 0 {
		rep.Head = f.AuditLog[n-1].Hash
	}
	return rep, nil
}

// ExportAudit implements api.Backend: one JSON line per entry.
func (f *Fake) ExportAudit(ctx context.Context, w io.Writer) error {
	f.mu.Lock()
	log, err := slices.Clone(f.AuditLog), f.Err
	f.mu.Unlock()
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	for _, e := range log {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
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
