// Package e2e tests xnode as an institution runs it: the real binary, one
// process per node, real loopback sockets.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"xnode/node/api"
)

var binary string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "xnode-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "xnode")
		out, err := exec.Command("go", "build", "-o", binary, "xnode/cmd/xnode").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "failed to build xnode: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func xnode(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("xnode %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type proc struct {
	name, dir string
	cmd       *exec.Cmd
	log       *os.File // node.log, appended to by every start
	client    *api.Client
	peerID    string
	p2pPort   int
}

// newNode initialises a data dir with free ports.
func newNode(t *testing.T, root, name string) *proc {
	t.Helper()
	p := &proc{name: name, dir: filepath.Join(root, name), p2pPort: freePort(t)}
	xnode(t, "init", "--dir", p.dir, "--name", name, "--p2p-port", fmt.Sprint(p.p2pPort), "--api", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	return p
}

func (p *proc) addr() string {
	return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", p.p2pPort, p.peerID)
}

// memberPolicy lets every consortium member run the built-in plugins on
// the clients dataset without a person's approval.
const memberPolicy = `
version = 1

[[rule]]
name = "members"
plugin = "*"
datasets = ["clients"]
peers = ["*"]
approval = "auto"
min_set_size = 10
`

// start runs the node as a process, waits until its API answers, and
// installs the built-in plugins. The first start registers the cleanup
// that stops the node, so a node restarted in a subtest runs on until the
// test that first started it ends.
func (p *proc) start(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, "policy.toml"), []byte(memberPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	if p.log == nil {
		log, err := os.OpenFile(filepath.Join(p.dir, "node.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		p.log = log
		t.Cleanup(func() { p.stop(t); p.log.Close() })
	}
	p.cmd = exec.Command(binary, "run", "--dir", p.dir, "--log-level", "debug")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var err error
	if p.client, err = api.ClientForDir(p.dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := p.client.NodeInfo(context.Background())
		if err == nil {
			p.peerID = info.PeerID
			for _, name := range []string{"overlap", "match"} {
				if _, err := p.client.InstallPlugin(context.Background(), api.InstallPluginRequest{Builtin: name}); err != nil {
					t.Fatalf("install %s at %s: %v", name, p.name, err)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(p.dir, "node.log"))
			t.Fatalf("node %s did not start: %v\n%s", p.name, err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *proc) stop(t *testing.T) {
	if p.cmd == nil || p.cmd.Process == nil || p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Errorf("node %s did not stop on SIGTERM", p.name)
	}
}

// pilotPair starts bank-a and bank-b, members of one consortium "pilot"
// in a fresh root directory, with bank-b as bank-a's peer.
func pilotPair(t *testing.T) (root string, a, b *proc) {
	t.Helper()
	root = t.TempDir()
	cons := filepath.Join(root, "consortium")
	xnode(t, "consortium", "init", "--dir", cons, "--name", "pilot")
	a, b = newNode(t, root, "bank-a"), newNode(t, root, "bank-b")
	for _, p := range []*proc{a, b} {
		xnode(t, "consortium", "admit", "--dir", cons, "--node", p.dir)
		p.start(t)
	}
	xnode(t, "peers", "add", "--dir", a.dir, "bank-b", b.addr())
	return root, a, b
}

func (p *proc) importIDs(t *testing.T, ids []string) {
	t.Helper()
	path := filepath.Join(p.dir, "clients.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "id,amount")
	for i, id := range ids {
		fmt.Fprintf(w, "%s,%d.00\n", id, 1000+i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rep, err := p.client.ImportDataset(context.Background(), api.ImportRequest{
		Name: "clients", File: path, IDColumns: []string{"id"}, IDKind: "cn_id", ValueColumns: []string{"amount"},
	}, nil)
	if err != nil {
		t.Fatalf("import at %s: %v", p.name, err)
	}
	if rep.Imported != int64(len(ids)) {
		t.Fatalf("import at %s: %d rows imported, want %d", p.name, rep.Imported, len(ids))
	}
}

// writeCSV writes a CSV of rows clients (residentID(0), …) with an amount
// to path.
func writeCSV(t *testing.T, path string, rows int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "id,amount")
	for i := 0; i < rows; i++ {
		fmt.Fprintf(w, "%s,%d.50\n", residentID(i), i%100000)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// query submits and waits for the query to end.
func (p *proc) query(t *testing.T, kind string, peers ...string) api.Query {
	t.Helper()
	ctx := context.Background()
	q, err := p.client.SubmitQuery(ctx, api.QueryRequest{Plugin: kind, Dataset: "clients", Peers: peers})
	if err != nil {
		return api.Query{Status: api.StatusFailed, Error: err.Error()}
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		got, err := p.client.GetQuery(ctx, q.ID)
		if err != nil {
			t.Fatalf("GetQuery: %v", err)
		}
		if api.Finished(got.Status) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("query %s at %s did not finish", q.ID, p.name)
	return api.Query{}
}

// residentID returns a valid 18-digit resident ID for i.
func residentID(i int) string {
	body := fmt.Sprintf("110105%s%03d", time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i/900).Format("20060102"), i%900+1)
	weights := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for k, w := range weights {
		sum += int(body[k]-'0') * w
	}
	return body + string("10X98765432"[sum%11])
}

func ids(lo, hi int) []string {
	var out []string
	for i := lo; i < hi; i++ {
		out = append(out, residentID(i))
	}
	return out
}

func TestTwoInstitutions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several node processes")
	}
	root := t.TempDir()
	cons := filepath.Join(root, "consortium")
	xnode(t, "consortium", "init", "--dir", cons, "--name", "pilot")
	a, b := newNode(t, root, "bank-a"), newNode(t, root, "bank-b")
	outsider, revoked := newNode(t, root, "outsider"), newNode(t, root, "bank-r")
	for _, p := range []*proc{a, b, revoked} {
		xnode(t, "consortium", "admit", "--dir", cons, "--node", p.dir)
	}
	other := filepath.Join(root, "other-consortium")
	xnode(t, "consortium", "init", "--dir", other, "--name", "elsewhere")
	xnode(t, "consortium", "admit", "--dir", other, "--node", outsider.dir)
	for _, p := range []*proc{a, b, outsider, revoked} {
		p.start(t)
	}
	ctx := context.Background()
	for _, peer := range []*proc{b, outsider, revoked} {
		if _, err := a.client.AddPeer(ctx, api.AddPeerRequest{Name: peer.name, Addr: peer.addr()}); err != nil {
			t.Fatalf("AddPeer(%s): %v", peer.name, err)
		}
	}

	// bank-a holds 0..1200, bank-b 700..2000: 500 shared.
	aIDs, bIDs := ids(0, 1200), ids(700, 2000)
	a.importIDs(t, aIDs)
	b.importIDs(t, bIDs)
	revoked.importIDs(t, bIDs)
	outsider.importIDs(t, bIDs)
	want := ids(700, 1200)

	t.Run("overlap", func(t *testing.T) {
		q := a.query(t, api.KindOverlap, "bank-b")
		if q.Status != api.StatusDone || q.Summary.IntersectionSize != len(want) {
			t.Fatalf("overlap = %s %q, size %d; want done, %d", q.Status, q.Error, q.Summary.IntersectionSize, len(want))
		}
		if q.Result == nil || len(q.Result.Rows) != 1 || q.Result.Rows[0][0] != "bank-b" {
			t.Errorf("overlap result = %+v, want one row for bank-b", q.Result)
		}
	})
	t.Run("match", func(t *testing.T) {
		q := a.query(t, api.KindMatch, "bank-b")
		if q.Status != api.StatusDone || q.Result == nil {
			t.Fatalf("match = %s %q; want done with rows", q.Status, q.Error)
		}
		idCol := slices.Index(q.Result.Columns, "id")
		if idCol < 0 {
			t.Fatalf("match result columns %v lack id", q.Result.Columns)
		}
		var got []string
		for _, r := range q.Result.Rows {
			got = append(got, r[idCol])
		}
		slices.Sort(got)
		if !slices.Equal(got, want) || q.Summary.IntersectionSize != len(want) {
			t.Errorf("match rows = %d ids (size %d), want the %d shared ids", len(got), q.Summary.IntersectionSize, len(want))
		}
	})
	t.Run("responder keeps a record", func(t *testing.T) {
		qs, err := b.client.ListQueries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, q := range qs {
			if q.Role == "responder" && q.Status == api.StatusDone && q.Summary.PeerSizes["bank-a"] == len(aIDs) {
				done++
			}
		}
		if done != 2 {
			t.Errorf("bank-b has %d finished responder records naming bank-a's %d items, want 2: %+v", done, len(aIDs), qs)
		}
	})
	t.Run("non-member refused", func(t *testing.T) {
		q := a.query(t, api.KindOverlap, "outsider")
		if q.Status != api.StatusFailed && q.Status != api.StatusDenied {
			t.Errorf("query to a node of another consortium = %s, want failed", q.Status)
		}
		peers, err := a.client.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range peers {
			if p.Name == "outsider" && p.Verified {
				t.Errorf("outsider is verified: %+v", p)
			}
		}
	})
	t.Run("revoked refused", func(t *testing.T) {
		if q := a.query(t, api.KindOverlap, "bank-r"); q.Status != api.StatusDone {
			t.Fatalf("query to bank-r before revocation = %s %q, want done", q.Status, q.Error)
		}
		xnode(t, "consortium", "revoke", "--dir", cons, "--node", revoked.dir, "--distribute", a.dir)
		deadline := time.Now().Add(15 * time.Second)
		var q api.Query
		for time.Now().Before(deadline) {
			if q = a.query(t, api.KindOverlap, "bank-r"); q.Status != api.StatusDone {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if q.Status == api.StatusDone {
			t.Errorf("query to a revoked node = %s, want refused", q.Status)
		}
		_, err := revoked.client.AddPeer(ctx, api.AddPeerRequest{Name: "bank-a", Addr: a.addr()})
		if err != nil {
			t.Fatal(err)
		}
		if q := revoked.query(t, api.KindOverlap, "bank-a"); q.Status == api.StatusDone {
			t.Errorf("query from a revoked node = %s, want refused", q.Status)
		}
	})
	t.Run("node keeps serving", func(t *testing.T) {
		if q := a.query(t, api.KindOverlap, "bank-b"); q.Status != api.StatusDone || q.Summary.IntersectionSize != len(want) {
			t.Errorf("overlap after the refusals = %s %q %d", q.Status, q.Error, q.Summary.IntersectionSize)
		}
	})
}
