package queries_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"xnode/node/api"
	"xnode/node/audit"
	"xnode/node/identity"
	"xnode/node/membership"
	"xnode/node/membership/membershiptest"
	"xnode/node/p2p"
	"xnode/node/policy"
	"xnode/node/queries"
	"xnode/node/registry"
	"xnode/node/store"
	"xnode/plugins"
)

// pluginDir holds the built-in plugins built once for the package's tests.
var pluginDir string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "xnode-queries-plugins")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		out, err := exec.Command("go", "build", "-o", dir+"/", "xnode/plugins/overlap", "xnode/plugins/match",
			"xnode/plugins/risk-check", "xnode/plugins/segment-stats").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "failed to build the built-in plugins: %v\n%s", err, out)
			return 1
		}
		pluginDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

const testPolicy = `
version = 1

[[rule]]
name = "tiny-budget"
plugin = "risk-check"
datasets = ["tinylist"]
peers = ["*"]
approval = "auto"
min_set_size = 5
evaluation_budget_per_peer_per_day = 150

[[rule]]
name = "four-party-sums"
plugin = "segment-stats"
datasets = ["quad"]
peers = ["*"]
approval = "auto"
min_set_size = 1
min_parties = 4

[[rule]]
name = "members-auto"
plugin = "*"
datasets = ["clients", "risklist"]
peers = ["*"]
approval = "auto"
min_set_size = 5

[[rule]]
name = "manual-review"
plugin = "*"
datasets = ["review"]
peers = ["*"]
approval = "manual"
min_set_size = 1
max_queries_per_peer_per_day = 2
`

// memDatasets serves datasets held in memory.
type memDatasets map[string]*memView

func (d memDatasets) Open(_ context.Context, name string, _ uint64) (queries.View, error) {
	v, ok := d[name]
	if !ok {
		return nil, fmt.Errorf("%w: dataset %q", api.ErrNotFound, name)
	}
	return v, nil
}

type memView struct {
	ids []string
	// cols and vals, if set, are the value and label columns.
	cols []plugins.Column
	vals func(pos int) []plugins.Value
	// onRead, if set, runs before each batch of keys a reader returns;
	// onRows before each chunk of rows.
	onRead func(batch int)
	onRows func()
}

func (v *memView) Version() uint64           { return 1 }
func (v *memView) Len() int                  { return len(v.ids) }
func (v *memView) Close() error              { return nil }
func (v *memView) Columns() []plugins.Column { return v.cols }

func (v *memView) row(pos int64, columns []string) plugins.Row {
	r := plugins.Row{Pos: pos, Key: "cn_id:" + v.ids[pos]}
	for _, name := range columns {
		for i, c := range v.cols {
			if c.Name == name {
				r.Values = append(r.Values, v.vals(int(pos))[i])
			}
		}
	}
	return r
}

func (v *memView) Row(_ context.Context, pos int64, columns []string) (plugins.Row, error) {
	return v.row(pos, columns), nil
}

func (v *memView) Rows(_ context.Context, columns []string) (plugins.RowReader, error) {
	return &memRows{v: v, columns: columns}, nil
}

type memRows struct {
	v       *memView
	off     int
	columns []string
}

func (r *memRows) Next() ([]plugins.Row, error) {
	if r.off >= len(r.v.ids) {
		return nil, io.EOF
	}
	if r.v.onRows != nil {
		r.v.onRows()
	}
	end := min(r.off+plugins.MaxChunk, len(r.v.ids))
	out := make([]plugins.Row, 0, end-r.off)
	for i := r.off; i < end; i++ {
		out = append(out, r.v.row(int64(i), r.columns))
	}
	r.off = end
	return out, nil
}

func (v *memView) Keys(context.Context) (queries.KeyReader, error) { return &memKeys{v: v}, nil }

type memKeys struct {
	v     *memView
	off   int
	batch int
}

func (k *memKeys) Next(dst [][]byte) (int, error) {
	if k.off >= len(k.v.ids) {
		return 0, io.EOF
	}
	if k.v.onRead != nil {
		k.v.onRead(k.batch)
	}
	k.batch++
	n := 0
	for n < len(dst) && k.off < len(k.v.ids) {
		dst[n] = append(dst[n][:0], "cn_id:"+k.v.ids[k.off]...)
		n++
		k.off++
	}
	return n, nil
}

// namedPeers resolves names among a fixed set.
type namedPeers map[string]peer.ID

func (p namedPeers) Resolve(_ context.Context, name string) (peer.ID, string, error) {
	if id, ok := p[name]; ok {
		return id, name, nil
	}
	return "", "", fmt.Errorf("%w: peer %q", api.ErrNotFound, name)
}

type member struct {
	cfg   queries.Config
	name  string
	host  *p2p.Node
	svc   *queries.Service
	st    *store.Store
	reg   *registry.Registry
	audit *audit.Log
}

type consortium struct {
	t     *testing.T
	mn    mocknet.Mocknet
	root  *membership.Root
	peers namedPeers
	port  int
}

func newConsortium(t *testing.T) *consortium {
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	return &consortium{t: t, mn: mn, root: membershiptest.NewRoot(t, "pilot"), peers: namedPeers{}}
}

// member starts a node's queries service with the built-in plugins
// installed and testPolicy in force.
func (c *consortium) member(name string, data memDatasets) *member {
	t := c.t
	t.Helper()
	id, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.port++
	h, err := c.mn.AddPeer(id.PrivKey(), ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 20000+c.port)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	cert := membershiptest.IssueNow(t, c.root, id.ID(), membership.DefaultRoles()...)
	cert.Name = name
	if err := c.root.SignCert(cert); err != nil {
		t.Fatal(err)
	}
	n, err := p2p.NewWithHost(context.Background(), h, p2p.Config{Identity: id, Consortium: c.root.Consortium, Cert: cert})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(st, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range []string{"overlap", "match", "risk-check", "segment-stats"} {
		if _, err := reg.Install(ctx, filepath.Join(pluginDir, p), nil, false); err != nil {
			t.Fatalf("install %s: %v", p, err)
		}
	}
	pol, err := policy.Parse([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	log := audit.New(st, id, nil)
	cfg := queries.Config{
		Store: st, Datasets: data, Network: n, Peers: c.peers, Name: name, Identity: id,
		Registry: reg, Policy: pol, Limiter: policy.NewLimiter(st, time.UTC), Audit: log,
		Timeout: 20 * time.Second,
	}
	svc, err := queries.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		svc.Close()
		n.Close()
		if rep, err := log.Verify(context.Background()); err != nil || !rep.OK {
			t.Errorf("audit chain of %s: %+v, %v", name, rep, err)
		}
		if err := st.Check(); err != nil {
			t.Errorf("store of %s after the test: %v", name, err)
		}
		st.Close()
	})
	c.peers[name] = id.ID()
	return &member{name: name, host: n, svc: svc, st: st, reg: reg, audit: log, cfg: cfg}
}

// restart stops the member's queries service and starts a new one on the
// same store and host, as a restarted node would: everything it kept only
// in memory is gone.
func (m *member) restart(t *testing.T, change ...func(*queries.Config)) *member {
	t.Helper()
	if err := m.svc.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := m.cfg
	for _, f := range change {
		f(&cfg)
	}
	svc, err := queries.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	next := *m
	next.svc, next.cfg = svc, cfg
	return &next
}

func connect(t *testing.T, a, b *member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.host.Connect(ctx, b.host.AddrInfo()); err != nil {
		t.Fatalf("connect %s → %s: %v", a.name, b.name, err)
	}
}

// wait polls a query until its status satisfies done.
func wait(t *testing.T, m *member, id string, done func(string) bool) api.Query {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		q, err := m.svc.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if done(q.Status) {
			return q
		}
		time.Sleep(20 * time.Millisecond)
	}
	q, _ := m.svc.Get(context.Background(), id)
	t.Fatalf("query %s at %s stayed %s", id, m.name, q.Status)
	return api.Query{}
}

func submit(t *testing.T, m *member, req api.QueryRequest) api.Query {
	t.Helper()
	q, err := m.svc.Submit(context.Background(), req)
	if err != nil {
		t.Fatalf("Submit(%+v): %v", req, err)
	}
	return wait(t, m, q.ID, api.Finished)
}

func idRange(lo, hi int) []string {
	out := make([]string, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, fmt.Sprintf("1101051990%08d", i))
	}
	return out
}

func TestOverlapAndMatch(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 3000)}})
	b := c.member("bank-b", memDatasets{"clients": {ids: idRange(2000, 6000)}})
	d := c.member("bank-d", memDatasets{"clients": {ids: idRange(2500, 2600)}})
	connect(t, a, b)
	connect(t, a, d)
	cases := []struct {
		plugin string
		peers  []string
		want   map[string]int
	}{
		{"overlap", []string{"bank-b"}, map[string]int{"bank-b": 1000}},
		{"match", []string{"bank-b"}, map[string]int{"bank-b": 1000}},
		{"match", []string{"bank-b", "bank-d"}, map[string]int{"bank-b": 1000, "bank-d": 100}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s %v", tc.plugin, tc.peers), func(t *testing.T) {
			got := submit(t, a, api.QueryRequest{Plugin: tc.plugin, Dataset: "clients", Peers: tc.peers})
			if got.Status != api.StatusDone {
				t.Fatalf("status %s (%s), want done", got.Status, got.Error)
			}
			total := 0
			for p, n := range tc.want {
				if got.Summary.PerPeer[p] != n {
					t.Errorf("overlap with %s = %d, want %d", p, got.Summary.PerPeer[p], n)
				}
				total += n
			}
			if got.Summary.IntersectionSize != total {
				t.Errorf("intersection_size = %d, want %d", got.Summary.IntersectionSize, total)
			}
			if got.Plugin == nil || got.Plugin.Name != tc.plugin || !strings.HasPrefix(got.Plugin.Digest, "sha256:") {
				t.Errorf("query names plugin %+v, want %s with its digest", got.Plugin, tc.plugin)
			}
			if tc.plugin == "overlap" {
				if got.Result == nil || len(got.Result.Rows) != 1 || got.Result.Rows[0][1] != "1000" {
					t.Errorf("overlap result = %+v, want one row with 1000 shared", got.Result)
				}
				return
			}
			idCol := slices.Index(got.Result.Columns, "id")
			peerCol := slices.Index(got.Result.Columns, "peer")
			var rows []string
			for _, r := range got.Result.Rows {
				if r[peerCol] == "bank-b" {
					rows = append(rows, r[idCol])
				}
			}
			slices.Sort(rows)
			if !slices.Equal(rows, idRange(2000, 3000)) {
				t.Errorf("match rows with bank-b: %d ids, want ids 2000..2999", len(rows))
			}
		})
	}
	t.Run("audit on both sides", func(t *testing.T) {
		qs, err := a.svc.List(context.Background())
		if err != nil || len(qs) == 0 {
			t.Fatalf("List: %v, %d queries", err, len(qs))
		}
		id := qs[0].ID
		for _, m := range []*member{a, b} {
			entries, err := m.audit.List(context.Background(), audit.Filter{QueryID: id})
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, e := range entries {
				kinds = append(kinds, string(e.Kind))
			}
			for _, k := range []audit.Kind{audit.KindProposal, audit.KindRun, audit.KindResult} {
				if !slices.Contains(kinds, string(k)) {
					t.Errorf("%s's audit of query %s = %v, lacks %s", m.name, id, kinds, k)
				}
			}
		}
	})
}

func TestApprovalFlow(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"review": {ids: idRange(0, 50)}, "clients": {ids: idRange(0, 3)}})
	b := c.member("bank-b", memDatasets{"review": {ids: idRange(40, 90)}, "clients": {ids: idRange(0, 30)}})
	connect(t, a, b)
	ctx := context.Background()
	propose := func() api.Query {
		q, err := a.svc.Submit(ctx, api.QueryRequest{Plugin: "overlap", Dataset: "review", Peers: []string{"bank-b"}})
		if err != nil {
			t.Fatal(err)
		}
		return wait(t, a, q.ID, func(s string) bool { return s == api.StatusAwaitingApproval })
	}

	t.Run("approve", func(t *testing.T) {
		q := propose()
		pending, err := b.svc.Pending(ctx)
		if err != nil || len(pending) != 1 || pending[0].ID != q.ID {
			t.Fatalf("bank-b pending = %+v, %v; want query %s", pending, err, q.ID)
		}
		if _, err := a.svc.Approve(ctx, q.ID); err == nil {
			t.Error("the querier approved its own query")
		}
		if _, err := b.svc.Approve(ctx, q.ID); err != nil {
			t.Fatal(err)
		}
		got := wait(t, a, q.ID, api.Finished)
		if got.Status != api.StatusDone || got.Summary.IntersectionSize != 10 {
			t.Errorf("approved query = %s %q, size %d; want done, 10", got.Status, got.Error, got.Summary.IntersectionSize)
		}
	})
	t.Run("deny", func(t *testing.T) {
		q := propose()
		if _, err := b.svc.Deny(ctx, q.ID, ""); err == nil {
			t.Error("Deny without a reason succeeded")
		}
		if _, err := b.svc.Deny(ctx, q.ID, "not during the audit period"); err != nil {
			t.Fatal(err)
		}
		got := wait(t, a, q.ID, api.Finished)
		if got.Status != api.StatusDenied || !strings.Contains(got.Error, "not during the audit period") {
			t.Errorf("denied query = %s %q, want denied with the reason", got.Status, got.Error)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		// Two review queries today already: the rule allows two a day.
		q, err := a.svc.Submit(ctx, api.QueryRequest{Plugin: "overlap", Dataset: "review", Peers: []string{"bank-b"}})
		if err != nil {
			t.Fatal(err)
		}
		got := wait(t, a, q.ID, api.Finished)
		if got.Status != api.StatusDenied || !strings.Contains(got.Error, "manual-review") {
			t.Errorf("third query of the day = %s %q, want denied naming rule manual-review", got.Status, got.Error)
		}
	})
	t.Run("minimum set size", func(t *testing.T) {
		got := submit(t, a, api.QueryRequest{Plugin: "overlap", Dataset: "clients", Peers: []string{"bank-b"}})
		if got.Status != api.StatusDenied || !strings.Contains(got.Error, "members-auto") {
			t.Errorf("query with 3 items against min_set_size 5 = %s %q, want denied naming the rule", got.Status, got.Error)
		}
	})
}

func TestPluginPinning(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 100)}})
	b := c.member("bank-b", memDatasets{"clients": {ids: idRange(50, 150)}})
	connect(t, a, b)
	ctx := context.Background()

	// bank-b's approved overlap is another build: a copy with bytes appended.
	other := filepath.Join(t.TempDir(), "overlap")
	data, err := os.ReadFile(filepath.Join(pluginDir, "overlap"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, append(data, []byte("\x00another build")...), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := b.reg.Install(ctx, other, nil, false); err != nil {
		t.Fatal(err)
	}
	got := submit(t, a, api.QueryRequest{Plugin: "overlap", Dataset: "clients", Peers: []string{"bank-b"}})
	if got.Status != api.StatusDenied || !strings.Contains(got.Error, queries.RulePluginDigest) {
		t.Errorf("query whose plugin digest bank-b did not approve = %s %q, want denied by %s", got.Status, got.Error, queries.RulePluginDigest)
	}

	// A binary swapped after installation is refused at launch.
	if err := os.WriteFile(other, append(data, []byte("\x00swapped")...), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := b.reg.Get("overlap")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := b.reg.Launch(ctx, p); err == nil {
		c.Close()
		t.Error("a swapped plugin binary launched")
	}

	// A plugin the participant never installed is denied too.
	if err := b.reg.Remove("match"); err != nil {
		t.Fatal(err)
	}
	got = submit(t, a, api.QueryRequest{Plugin: "match", Dataset: "clients", Peers: []string{"bank-b"}})
	if got.Status != api.StatusDenied || !strings.Contains(got.Error, "not installed") {
		t.Errorf("query with a plugin bank-b lacks = %s %q, want denied", got.Status, got.Error)
	}
}

func TestSubmitErrors(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 10)}})
	b := c.member("bank-b", memDatasets{"other": {ids: idRange(0, 10)}})
	connect(t, a, b)
	ctx := context.Background()
	got := submit(t, a, api.QueryRequest{Plugin: "overlap", Dataset: "clients", Peers: []string{"bank-b"}})
	if got.Status != api.StatusDenied || !strings.Contains(got.Error, "no dataset") {
		t.Errorf("query against a missing peer dataset = %s %q, want denied naming the dataset", got.Status, got.Error)
	}
	bad := []struct {
		req  api.QueryRequest
		want string
	}{
		{api.QueryRequest{Plugin: "union", Dataset: "clients", Peers: []string{"bank-b"}}, "not installed"},
		{api.QueryRequest{Plugin: "overlap", Kind: "match", Dataset: "clients", Peers: []string{"bank-b"}}, "alias"},
		{api.QueryRequest{Plugin: "overlap", Dataset: "nope", Peers: []string{"bank-b"}}, "nope"},
		{api.QueryRequest{Plugin: "overlap", Dataset: "clients", Peers: []string{"bank-z"}}, "bank-z"},
		{api.QueryRequest{Plugin: "overlap", Dataset: "clients"}, "--peers"},
		{api.QueryRequest{Plugin: "overlap", Dataset: "clients", Peers: []string{"bank-b", "bank-b"}}, "twice"},
		{api.QueryRequest{Plugin: "overlap", Dataset: "clients", Peers: []string{"bank-b"}, Suite: "rot13"}, "rot13"},
		{api.QueryRequest{Plugin: "overlap", Dataset: "clients", Peers: []string{"bank-b"}, Params: map[string]string{"colour": "red"}}, "colour"},
	}
	for _, tc := range bad {
		_, err := a.svc.Submit(ctx, tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Submit(%+v) = %v, want an error mentioning %q", tc.req, err, tc.want)
		}
	}
}

// TestPeerVanishesMidProtocol cuts the link while the responder reads its
// set: both sides end with a failed record, no goroutine is left behind,
// and once the link is back the next query succeeds.
func TestPeerVanishesMidProtocol(t *testing.T) {
	c := newConsortium(t)
	var cut atomic.Bool
	respView := &memView{ids: idRange(0, 20000)}
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(10000, 12000)}})
	b := c.member("bank-b", memDatasets{"clients": respView})
	connect(t, a, b)
	before := runtime.NumGoroutine()
	respView.onRead = func(batch int) {
		if batch == 2 && cut.CompareAndSwap(false, true) {
			if err := c.mn.DisconnectPeers(c.peers["bank-a"], c.peers["bank-b"]); err != nil {
				t.Errorf("disconnect: %v", err)
			}
		}
	}
	ctx := context.Background()
	got := submit(t, a, api.QueryRequest{Plugin: "match", Dataset: "clients", Peers: []string{"bank-b"}})
	if got.Status != api.StatusFailed || got.Result != nil {
		t.Fatalf("querier record = %s %q, want failed without a result", got.Status, got.Error)
	}
	rec := wait(t, b, got.ID, api.Finished)
	if rec.Status != api.StatusFailed {
		t.Errorf("responder record = %s %q, want failed", rec.Status, rec.Error)
	}
	settle := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(settle) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the failed query, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	respView.onRead = nil
	connect(t, a, b)
	if got := submit(t, a, api.QueryRequest{Plugin: "overlap", Dataset: "clients", Peers: []string{"bank-b"}}); got.Status != api.StatusDone || got.Summary.IntersectionSize != 2000 {
		t.Errorf("query after reconnecting = %s %q %d, want done with 2000", got.Status, got.Error, got.Summary.IntersectionSize)
	}
	_ = ctx
}
