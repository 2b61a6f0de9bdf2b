// Package node_test launches the Node.js example plugin through
// plugins.Launch and runs the conformance suite against it.
package node_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xnode/plugins"
	"xnode/plugins/plugintest"
)

// ready skips when Node.js or the example's dependencies are missing, except
// in CI, where install.sh must have run.
func ready(t *testing.T) string {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join("_plugin", "node_modules", "@grpc", "grpc-js")); err != nil {
		missing = "node_modules is missing"
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s; CI must run plugins/examples/node/install.sh first", missing)
		}
		t.Skipf("%s: run plugins/examples/node/install.sh to test the Node.js example plugin", missing)
	}
	path, err := filepath.Abs(filepath.Join("_plugin", "plugin.js"))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func launch(t *testing.T, path string) *plugins.Client {
	t.Helper()
	sum, err := plugins.Digest(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := plugins.Launch(ctx, path, sum, nil)
	if err != nil {
		t.Fatalf("Launch(%s) error = %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNodePluginConforms(t *testing.T) {
	c := launch(t, ready(t))
	if d := c.Descriptor(); d.Name != "match-share" || d.Protocol != plugins.Intersection {
		t.Errorf("Descriptor() = %s/%s, want match-share/psi.intersection", d.Name, d.Protocol)
	}
	plugintest.Run(t, c, plugintest.Options{})
}

// TestNodePluginRunsAQuery drives a small query through the plugin the way
// the node does and checks the numbers.
func TestNodePluginRunsAQuery(t *testing.T) {
	c := launch(t, ready(t))
	ctx := context.Background()
	params := map[string]string{"decimals": "2"}
	if _, err := c.Plan(ctx, params); err != nil {
		t.Fatal(err)
	}
	var items int
	rows := &rowChunks{n: 10_000}
	err := c.Prepare(ctx, plugins.PrepareRequest{Params: params, Role: plugins.Querier}, rows, func(it []plugins.Item) error {
		items += len(it)
		return nil
	})
	if err != nil || items != 10_000 {
		t.Fatalf("Prepare(10000 rows) = %d items, %v; want 10000, nil", items, err)
	}
	m := &matchChunks{peers: map[string]int{"bank-b": 1234, "bank-c": 5}}
	var got []string
	sum, err := c.Finalize(ctx, plugins.FinalizeRequest{Params: params, OwnSize: 10_000,
		Peers: []plugins.PeerOutput{{Peer: "bank-b", Cardinality: 1234}, {Peer: "bank-c", Cardinality: 5}}}, m,
		func(r []plugins.ResultRow) error {
			for _, row := range r {
				got = append(got, strings.Join(row, "|"))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bank-b|1234|12.34", "bank-c|5|0.05"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Finalize rows = %q, want %q", got, want)
	}
	if sum["matched_rows"] != "1239" {
		t.Errorf("Finalize summary = %v, want matched_rows 1239", sum)
	}
	if _, err := c.Plan(ctx, map[string]string{"decimals": "9"}); !errors.Is(err, plugins.ErrInvalidParams) || !strings.Contains(err.Error(), "decimals") {
		t.Errorf("Plan(decimals=9) error = %v, want the plugin's own ErrInvalidParams naming decimals", err)
	}
}

func TestNodePluginDigestPinned(t *testing.T) {
	path := ready(t)
	sum, err := plugins.Digest(path)
	if err != nil {
		t.Fatal(err)
	}
	sum[0] ^= 1
	if c, err := plugins.Launch(context.Background(), path, sum, nil); !errors.Is(err, plugins.ErrDigestMismatch) {
		if c != nil {
			c.Close()
		}
		t.Errorf("Launch(wrong digest) error = %v, want ErrDigestMismatch", err)
	}
}

type rowChunks struct {
	n, next int64
	buf     []plugins.Row
}

func (r *rowChunks) Next() ([]plugins.Row, error) {
	if r.next >= r.n {
		return nil, io.EOF
	}
	k := min(int64(plugins.MaxChunk), r.n-r.next)
	r.buf = r.buf[:0]
	for i := range k {
		r.buf = append(r.buf, plugins.Row{Pos: r.next + i, Key: plugintest.Key(r.next + i)})
	}
	r.next += k
	return r.buf, nil
}

type matchChunks struct {
	peers map[string]int
	sent  bool
}

func (m *matchChunks) Next() ([]plugins.Match, error) {
	if m.sent {
		return nil, io.EOF
	}
	m.sent = true
	var out []plugins.Match
	for _, p := range []string{"bank-b", "bank-c"} {
		for i := range m.peers[p] {
			out = append(out, plugins.Match{Peer: p, Row: plugins.Row{Pos: int64(i), Key: plugintest.Key(int64(i))}})
		}
	}
	return out, nil
}
