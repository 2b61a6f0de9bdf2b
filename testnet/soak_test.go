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

// envInt reads a positive integer from the environment.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestSoak runs a 3-node testnet of real processes on loopback sockets,
// repeats every built-in query against the ground truth, then fires
// concurrent overlap and match queries between random pairs and checks
// each answer. Sizes come from the environment; the defaults are the
// smoke form .ci/run runs:
//
//	XNODE_SOAK_RECORDS=5000 XNODE_SOAK_ROUNDS=1 XNODE_SOAK_CONCURRENT=10 \
//	    go test -tags soak -run TestSoak -timeout 0 ./testnet/
func TestSoak(t *testing.T) {
	records := envInt("XNODE_SOAK_RECORDS", 5000)
	rounds := envInt("XNODE_SOAK_ROUNDS", 1)
	concurrent := envInt("XNODE_SOAK_CONCURRENT", 10)
	dir := t.TempDir()
	bin := filepath.Join(dir, "xnode")
	if out, err := exec.Command("go", "build", "-o", bin, "xnode/cmd/xnode").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
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

	// Concurrent load between random pairs, every answer checked.
	rng := rand.New(rand.NewPCG(uint64(records), 1))
	type job struct{ plugin, querier, peer string }
	jobs := make([]job, concurrent)
	for i := range jobs {
		q := truth.Nodes[rng.IntN(len(truth.Nodes))]
		p := q
		for p == q {
			p = truth.Nodes[rng.IntN(len(truth.Nodes))]
		}
		jobs[i] = job{[]string{api.KindOverlap, api.KindMatch}[i%2], q, p}
	}
	start := time.Now()
	var g errgroup.Group
	for _, j := range jobs {
		g.Go(func() error {
			q, err := run(ctx, j.querier, api.QueryRequest{Plugin: j.plugin, Dataset: testnet.DatasetClients, Peers: []string{j.peer}})
			if err != nil {
				return fmt.Errorf("%s %s→%s: %w", j.plugin, j.querier, j.peer, err)
			}
			compare := testnet.CompareOverlap
			if j.plugin == api.KindMatch {
				compare = testnet.CompareMatch
			}
			if out := compare(q, truth, j.querier, j.peer); !out.OK {
				return fmt.Errorf("%s %s→%s: %s (answer %s, truth %s)", j.plugin, j.querier, j.peer, out.Detail, out.Answer, out.Want)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d concurrent queries exact in %.1fs", len(jobs), time.Since(start).Seconds())
}
