package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"xnode/node/api"
)

// manualPolicy makes every query on clients wait for a person.
const manualPolicy = `
version = 1

[[rule]]
name = "review-everything"
plugin = "*"
datasets = ["clients"]
peers = ["*"]
approval = "manual"
min_set_size = 10
`

// run runs the binary and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("xnode %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

func queryJSON(t *testing.T, out string) api.Query {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var q api.Query
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &q); err != nil {
		t.Fatalf("last line is not a query: %v\n%s", err, out)
	}
	return q
}

func waitStatus(t *testing.T, dir, id string, done func(string) bool) api.Query {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		q := queryJSON(t, xnode(t, "query", "status", id, "--dir", dir, "--json"))
		if done(q.Status) {
			return q
		}
		if time.Now().After(deadline) {
			t.Fatalf("query %s stayed %s", id, q.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestApprovalsAndAuditOverTheCLI drives a manual approval, a denial, the
// audit chain and a plugin written in another language through the CLI,
// the way operators and analysts do.
func TestApprovalsAndAuditOverTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several node processes")
	}
	root := t.TempDir()
	cons := filepath.Join(root, "consortium")
	xnode(t, "consortium", "init", "--dir", cons, "--name", "pilot")
	a, b := newNode(t, root, "bank-a"), newNode(t, root, "bank-b")
	for _, p := range []*proc{a, b} {
		xnode(t, "consortium", "admit", "--dir", cons, "--node", p.dir)
	}
	a.start(t)
	b.start(t)
	// bank-b reviews every query by hand.
	if err := os.WriteFile(filepath.Join(b.dir, "policy.toml"), []byte(manualPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	xnode(t, "peers", "add", "--dir", a.dir, "bank-b", b.addr())
	xnode(t, "peers", "add", "--dir", b.dir, "bank-a", a.addr())
	for _, p := range []struct {
		n   *proc
		ids []string
	}{{a, ids(0, 300)}, {b, ids(200, 600)}} {
		csv := filepath.Join(p.n.dir, "clients.csv")
		if err := os.WriteFile(csv, []byte("id\n"+strings.Join(p.ids, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		xnode(t, "dataset", "import", "--dir", p.n.dir, "--name", "clients", "--file", csv, "--id-column", "id", "--id-kind", "cn_id")
	}
	time.Sleep(2500 * time.Millisecond) // the policy watcher polls every 2 s

	submit := func() string {
		q := queryJSON(t, xnode(t, "query", "submit", "--dir", a.dir, "--plugin", "overlap", "--dataset", "clients", "--peers", "bank-b", "--json"))
		waitStatus(t, a.dir, q.ID, func(s string) bool { return s == api.StatusAwaitingApproval })
		return q.ID
	}

	approved := submit()
	t.Run("approve", func(t *testing.T) {
		var pending []api.Query
		if err := json.Unmarshal([]byte(xnode(t, "query", "pending", "--dir", b.dir, "--json")), &pending); err != nil {
			t.Fatal(err)
		}
		if len(pending) != 1 || pending[0].ID != approved {
			t.Fatalf("bank-b pending = %+v, want query %s", pending, approved)
		}
		xnode(t, "query", "approve", approved, "--dir", b.dir)
		q := waitStatus(t, a.dir, approved, api.Finished)
		if q.Status != api.StatusDone || q.Summary.IntersectionSize != 100 {
			t.Errorf("approved query = %s %q, size %d; want done, 100", q.Status, q.Error, q.Summary.IntersectionSize)
		}
	})
	t.Run("deny", func(t *testing.T) {
		id := submit()
		xnode(t, "query", "deny", id, "--dir", b.dir, "--reason", "month-end freeze")
		q := waitStatus(t, a.dir, id, api.Finished)
		if q.Status != api.StatusDenied || !strings.Contains(q.Error, "month-end freeze") {
			t.Errorf("denied query = %s %q, want denied with the reason", q.Status, q.Error)
		}
	})
	t.Run("audit on every participant", func(t *testing.T) {
		for _, p := range []*proc{a, b} {
			var entries []api.AuditEntry
			if err := json.Unmarshal([]byte(xnode(t, "audit", "show", "--dir", p.dir, "--query", approved, "--json")), &entries); err != nil {
				t.Fatal(err)
			}
			kinds := map[string]bool{}
			for _, e := range entries {
				kinds[e.Kind] = true
			}
			for _, k := range []string{"proposal", "approval", "run", "result"} {
				if !kinds[k] {
					t.Errorf("%s's audit of query %s lacks %s: %v", p.name, approved, k, kinds)
				}
			}
		}
	})
	if _, err := exec.LookPath("node"); err == nil {
		t.Run("plugin in another language", func(t *testing.T) {
			js, _ := filepath.Abs(filepath.Join("..", "..", "..", "plugins", "examples", "node", "_plugin", "plugin.js"))
			if _, err := os.Stat(filepath.Join(filepath.Dir(js), "node_modules")); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("the Node.js example plugin is not installed: run plugins/examples/node/install.sh")
				}
				t.Skip("run plugins/examples/node/install.sh to test the Node.js example plugin")
			}
			for _, p := range []*proc{a, b} {
				xnode(t, "plugin", "install", js, "--dir", p.dir)
			}
			out, stderr, code := run(t, "query", "run", "--dir", b.dir, "--plugin", "match-share", "--dataset", "clients", "--peers", "bank-a", "--json")
			q := queryJSON(t, out)
			if code != 0 || q.Status != api.StatusDone || q.Summary.IntersectionSize != 100 {
				t.Errorf("match-share from bank-b = exit %d, %s %q, size %d; want done, 100\n%s", code, q.Status, q.Error, q.Summary.IntersectionSize, stderr)
			}
		})
	}
	t.Run("tampered audit entry", func(t *testing.T) {
		if _, _, code := run(t, "audit", "verify", "--dir", a.dir); code != 0 {
			t.Fatalf("audit verify of an untouched chain exits %d", code)
		}
		a.stop(t)
		db, err := bolt.Open(filepath.Join(a.dir, "store.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var seq uint64
		err = db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket([]byte("audit"))
			return bk.ForEach(func(k, v []byte) error {
				if seq != 0 || len(k) != 8 || !bytes.Contains(v, []byte(`"kind":"proposal"`)) {
					return nil
				}
				seq = uint64(k[7]) | uint64(k[6])<<8
				return bk.Put(append([]byte(nil), k...), bytes.Replace(v, []byte(`"kind":"proposal"`), []byte(`"kind":"approval"`), 1))
			})
		})
		db.Close()
		if err != nil || seq == 0 {
			t.Fatalf("failed to tamper with an audit entry: %v (seq %d)", err, seq)
		}
		a.cmd = nil
		a.start(t)
		out, stderr, code := run(t, "audit", "verify", "--dir", a.dir, "--json")
		var rep api.AuditReport
		_ = json.Unmarshal([]byte(out), &rep)
		if code == 0 || rep.OK || rep.FirstBadSeq != seq {
			t.Errorf("audit verify after editing entry %d = exit %d, %+v\n%s", seq, code, rep, stderr)
		}
	})
}
