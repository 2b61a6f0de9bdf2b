package queries_test

import (
	"context"
	"fmt"
	"io"
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
	"xnode/node/identity"
	"xnode/node/membership"
	"xnode/node/membership/membershiptest"
	"xnode/node/p2p"
	"xnode/node/queries"
	"xnode/node/store"
	"xnode/protocol/psi/ecdh"
)

// memDatasets serves datasets held in memory.
type memDatasets map[string]*memView

func (d memDatasets) Open(_ context.Context, name string) (queries.View, error) {
	v, ok := d[name]
	if !ok {
		return nil, fmt.Errorf("%w: dataset %q", api.ErrNotFound, name)
	}
	return v, nil
}

type memView struct {
	ids []string
	// onRead, if set, runs before each batch the view's readers return.
	onRead func(batch int)
}

func (v *memView) Version() uint64 { return 1 }
func (v *memView) Len() int        { return len(v.ids) }
func (v *memView) Close() error    { return nil }
func (v *memView) Display(pos []int) ([]string, error) {
	out := make([]string, len(pos))
	for i, p := range pos {
		out[i] = v.ids[p]
	}
	return out, nil
}
func (v *memView) IDs() (ecdh.Source, error) { return &memSource{v: v}, nil }

type memSource struct {
	v     *memView
	off   int
	batch int
}

func (s *memSource) Len() int { return len(s.v.ids) }
func (s *memSource) Next(dst [][]byte) (int, error) {
	if s.off >= len(s.v.ids) {
		return 0, io.EOF
	}
	if s.v.onRead != nil {
		s.v.onRead(s.batch)
	}
	s.batch++
	n := 0
	for n < len(dst) && s.off < len(s.v.ids) {
		dst[n] = []byte("cn_id:" + s.v.ids[s.off])
		n++
		s.off++
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
	name string
	host *p2p.Node
	svc  *queries.Service
	data memDatasets
	st   *store.Store
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
	svc, err := queries.New(queries.Config{Store: st, Datasets: data, Network: n, Peers: c.peers, Name: name, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		svc.Close()
		n.Close()
		if err := st.Check(); err != nil {
			t.Errorf("store of %s after the test: %v", name, err)
		}
		st.Close()
	})
	c.peers[name] = id.ID()
	return &member{name: name, host: n, svc: svc, data: data, st: st}
}

func connect(t *testing.T, a, b *member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.host.Connect(ctx, b.host.AddrInfo()); err != nil {
		t.Fatalf("connect %s → %s: %v", a.name, b.name, err)
	}
}

func wait(t *testing.T, m *member, id string) api.Query {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		q, err := m.svc.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if q.Status == api.StatusDone || q.Status == api.StatusFailed {
			return q
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("query %s did not finish", id)
	return api.Query{}
}

func idRange(lo, hi int) []string {
	out := make([]string, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, fmt.Sprintf("1101051990%08d", i))
	}
	return out
}

func TestOverlapAndMatchOverMocknet(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 3000)}})
	b := c.member("bank-b", memDatasets{"clients": {ids: idRange(2000, 6000)}})
	d := c.member("bank-d", memDatasets{"clients": {ids: idRange(2500, 2600)}})
	connect(t, a, b)
	connect(t, a, d)
	ctx := context.Background()
	cases := []struct {
		kind  string
		peers []string
		want  map[string]int
	}{
		{api.KindOverlap, []string{"bank-b"}, map[string]int{"bank-b": 1000}},
		{api.KindMatch, []string{"bank-b"}, map[string]int{"bank-b": 1000}},
		{api.KindMatch, []string{"bank-b", "bank-d"}, map[string]int{"bank-b": 1000, "bank-d": 100}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s %v", tc.kind, tc.peers), func(t *testing.T) {
			q, err := a.svc.Submit(ctx, api.QueryRequest{Kind: tc.kind, Dataset: "clients", Peers: tc.peers})
			if err != nil {
				t.Fatal(err)
			}
			got := wait(t, a, q.ID)
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
			if tc.kind == api.KindOverlap {
				if got.Result != nil {
					t.Errorf("overlap revealed rows")
				}
				return
			}
			var rows []string
			for _, r := range got.Result.Rows {
				if r[1] == "bank-b" {
					rows = append(rows, r[0])
				}
			}
			slices.Sort(rows)
			if !slices.Equal(rows, idRange(2000, 3000)) {
				t.Errorf("match rows with bank-b: %d ids, want ids 2000..2999", len(rows))
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 10)}})
	b := c.member("bank-b", memDatasets{"other": {ids: idRange(0, 10)}})
	connect(t, a, b)
	ctx := context.Background()
	q, err := a.svc.Submit(ctx, api.QueryRequest{Kind: api.KindOverlap, Dataset: "clients", Peers: []string{"bank-b"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := wait(t, a, q.ID); got.Status != api.StatusFailed || !strings.Contains(got.Error, "no dataset") {
		t.Errorf("query against a missing peer dataset = %s %q, want failed naming the dataset", got.Status, got.Error)
	}
	bad := []api.QueryRequest{
		{Kind: "union", Dataset: "clients", Peers: []string{"bank-b"}},
		{Kind: api.KindOverlap, Dataset: "nope", Peers: []string{"bank-b"}},
		{Kind: api.KindOverlap, Dataset: "clients", Peers: []string{"bank-z"}},
		{Kind: api.KindOverlap, Dataset: "clients"},
		{Kind: api.KindOverlap, Dataset: "clients", Peers: []string{"bank-b", "bank-b"}},
		{Kind: api.KindOverlap, Dataset: "clients", Peers: []string{"bank-b"}, Suite: "rot13"},
	}
	for _, req := range bad {
		if _, err := a.svc.Submit(ctx, req); err == nil {
			t.Errorf("Submit(%+v) accepted", req)
		}
	}
}

// TestPeerVanishesMidProtocol cuts the link while the responder streams its
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
	q, err := a.svc.Submit(ctx, api.QueryRequest{Kind: api.KindMatch, Dataset: "clients", Peers: []string{"bank-b"}})
	if err != nil {
		t.Fatal(err)
	}
	got := wait(t, a, q.ID)
	if got.Status != api.StatusFailed || got.Result != nil {
		t.Fatalf("querier record = %s %q, want failed without a result", got.Status, got.Error)
	}
	deadline := time.Now().Add(10 * time.Second)
	var rec api.Query
	for time.Now().Before(deadline) {
		if rec, err = b.svc.Get(ctx, q.ID); err == nil && rec.Status != api.StatusRunning {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	q, err = a.svc.Submit(ctx, api.QueryRequest{Kind: api.KindOverlap, Dataset: "clients", Peers: []string{"bank-b"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := wait(t, a, q.ID); got.Status != api.StatusDone || got.Summary.IntersectionSize != 2000 {
		t.Errorf("query after reconnecting = %s %q %d, want done with 2000", got.Status, got.Error, got.Summary.IntersectionSize)
	}
}
