//go:build soak

package testnet_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"xnode/node/api"
	"xnode/testnet"
	"xnode/testnet/synth"
)

// buildXnode builds the xnode binary into dir.
func buildXnode(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "xnode")
	if out, err := exec.Command("go", "build", "-o", bin, "xnode/cmd/xnode").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// envInt reads a positive integer from the environment.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestSoak runs a 3-node testnet of real processes on loopback sockets,
// repeats every built-in query against the ground truth, then fires
// concurrent overlap, match and risk-check queries between random pairs:
// the load test, with every answer checked, no goroutine left once they
// end, and each node's peak RSS at most XNODE_SOAK_MAX_RSS_MIB (default
// 1024). Sizes come from the environment; the defaults are the smoke form
// .ci/run runs:
//
//	XNODE_SOAK_RECORDS=5000 XNODE_SOAK_ROUNDS=1 XNODE_SOAK_CONCURRENT=20 \
//	    go test -tags soak -run TestSoak -timeout 0 ./testnet/
func TestSoak(t *testing.T) {
	records := envInt("XNODE_SOAK_RECORDS", 5000)
	rounds := envInt("XNODE_SOAK_ROUNDS", 1)
	concurrent := envInt("XNODE_SOAK_CONCURRENT", 20)
	maxRSS := int64(envInt("XNODE_SOAK_MAX_RSS_MIB", 1024)) << 20
	dir := t.TempDir()
	bin := buildXnode(t, dir)
	ctx := context.Background()
	st, err := testnet.Up(ctx, testnet.Options{
		Dir: filepath.Join(dir, "net"), Binary: bin, Nodes: 3, Records: records, Overlap: 0.3, Seed: 7,
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatalf("testnet up: %v", err)
	}
	t.Cleanup(func() {
		if _, err := testnet.Down(context.Background(), st.Dir, t.Logf); err != nil {
			t.Errorf("testnet down: %v", err)
		}
	})
	truth, err := synth.ReadTruth(st.Data.Truth)
	if err != nil {
		t.Fatal(err)
	}
	run := testnet.APIQueryFunc(st, 30*time.Minute)

	for r := 1; r <= rounds; r++ {
		start := time.Now()
		rep, err := testnet.Demo(ctx, testnet.DemoOptions{Truth: truth, Run: run})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("round %d: wrong answers: %+v", r, rep.Failed())
		}
		t.Logf("round %d: %d queries exact in %.1fs", r, len(rep.Rows), time.Since(start).Seconds())
	}

	// Load: concurrent overlap, match and risk-check queries between random
	// pairs, every answer checked; afterwards every node must be back to
	// its goroutine count from before, and its peak RSS bounded.
	base := map[string]int{}
	for _, n := range st.Nodes {
		if base[n.Name], err = goroutines(ctx, n.API); err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(records), 1))
	type job struct {
		check         testnet.Check
		querier, peer string
	}
	kinds := []testnet.Check{testnet.Checks[0], testnet.Checks[1], testnet.Checks[2]}
	jobs := make([]job, concurrent)
	for i := range jobs {
		q := truth.Nodes[rng.IntN(len(truth.Nodes))]
		p := q
		for p == q {
			p = truth.Nodes[rng.IntN(len(truth.Nodes))]
		}
		jobs[i] = job{kinds[i%len(kinds)], q, p}
	}
	start := time.Now()
	var g errgroup.Group
	for _, j := range jobs {
		g.Go(func() error {
			c := j.check
			q, err := run(ctx, j.querier, api.QueryRequest{Plugin: c.Kind, Dataset: c.Dataset, PeerDataset: c.PeerDataset, Peers: []string{j.peer}})
			if err != nil {
				return fmt.Errorf("%s %s→%s: %w", c.Kind, j.querier, j.peer, err)
			}
			if out := c.Compare(q, truth, j.querier, j.peer); !out.OK {
				return fmt.Errorf("%s %s→%s: %s (answer %s, truth %s)", c.Kind, j.querier, j.peer, out.Detail, out.Answer, out.Want)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d concurrent queries exact in %.1fs", len(jobs), time.Since(start).Seconds())

	for _, n := range st.Live() {
		// Sessions end with the query, but stream handlers and libp2p's own
		// goroutines wind down asynchronously: allow them a few seconds.
		var now int
		deadline := time.Now().Add(10 * time.Second)
		for {
			if now, err = goroutines(ctx, n.API); err != nil {
				t.Fatalf("%s: %v", n.Name, err)
			}
			if now <= base[n.Name]+goroutineSlack || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		m, err := procMemory(n.Pid)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d goroutines before the load, %d after; peak RSS %d MiB", n.Name, base[n.Name], now, m.PeakRSS>>20)
		if now > base[n.Name]+goroutineSlack {
			t.Errorf("%s: %d goroutines after the load, want at most %d (%d before): a leak", n.Name, now, base[n.Name]+goroutineSlack, base[n.Name])
		}
		if m.PeakRSS > maxRSS {
			t.Errorf("%s: peak RSS %d MiB under load, want at most %d MiB", n.Name, m.PeakRSS>>20, maxRSS>>20)
		}
	}
}

// goroutineSlack is how many more goroutines than before the load a node
// may have once it ends: connection-level workers of libp2p come and go.
const goroutineSlack = 5
