//go:build soak

package testnet_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"xnode/node/api"
	"xnode/testnet"
	"xnode/testnet/synth"
)

// datasetApplicants is the querier's applicants in TestScale: the first
// rows of its clients, checked against the peer's risk list.
const datasetApplicants = "applicants"

// TestScale runs two node processes on loopback sockets over large sets
// and checks every built-in PSI query against the ground truth, round after
// round, recording each node's peak RSS. The defaults are a smoke form;
// the runs are
//
//	XNODE_SCALE_RECORDS=1000000 XNODE_SCALE_ROUNDS=5 \
//	    go test -tags soak -run TestScale -timeout 0 -v ./testnet/
//	XNODE_SCALE_RECORDS=10000000 XNODE_SCALE_PLUGINS=overlap XNODE_SCALE_RISK_RECORDS=1000 \
//	    go test -tags soak -run TestScale -timeout 0 -v ./testnet/
//
// XNODE_SCALE_APPLICANTS (default Records/10) sets how many of the
// querier's clients the risk check asks about; the peer's risk list has
// XNODE_SCALE_RISK_RECORDS rows (default Records). XNODE_SCALE_MAX_RSS_MIB
// (default 2048) bounds each node's peak anonymous memory, sampled every
// second during the queries: the memory the node allocates. The file-backed
// part of its RSS, the pages of the store's read-only memory map, is page
// cache the kernel reclaims under pressure; it is reported next to it, with
// the total peak (VmHWM). XNODE_SCALE_REPORT names a file for a JSON summary.
func TestScale(t *testing.T) {
	records := envInt("XNODE_SCALE_RECORDS", 5000)
	rounds := envInt("XNODE_SCALE_ROUNDS", 1)
	applicants := min(envInt("XNODE_SCALE_APPLICANTS", max(records/10, 10)), records)
	riskRecords := envInt("XNODE_SCALE_RISK_RECORDS", records)
	maxRSS := int64(envInt("XNODE_SCALE_MAX_RSS_MIB", 2048)) << 20
	plugins := strings.Split(cmp.Or(os.Getenv("XNODE_SCALE_PLUGINS"), "overlap,match,risk-check"), ",")

	dir := t.TempDir()
	bin := buildXnode(t, dir)
	ctx := context.Background()
	t0 := time.Now()
	st, err := testnet.Up(ctx, testnet.Options{
		Dir: filepath.Join(dir, "net"), Binary: bin, Nodes: 2, Records: records, RiskRecords: riskRecords,
		Overlap: 0.3, Seed: 11, PSITimeout: 6 * time.Hour, ReadyTimeout: time.Minute,
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
	setup := time.Since(t0)
	live := st.Live()
	if len(live) != 2 {
		t.Fatalf("%d nodes running after up, want 2", len(live))
	}
	peaks, stopWatch := watchMemory(t, live)
	truth, err := synth.ReadTruth(st.Data.Truth)
	if err != nil {
		t.Fatal(err)
	}
	querier := truth.Nodes[0]

	var checks []testnet.Check
	for _, p := range plugins {
		i := slices.IndexFunc(testnet.Checks, func(c testnet.Check) bool { return c.Kind == p })
		if i < 0 || testnet.Checks[i].AllPeers {
			t.Fatalf("XNODE_SCALE_PLUGINS names %q; want PSI plugins among overlap, match, risk-check", p)
		}
		c := testnet.Checks[i]
		if c.Kind == "risk-check" {
			c = applicantsCheck(t, st, querier, applicants, c)
		}
		checks = append(checks, c)
	}

	run := testnet.APIQueryFunc(st, 12*time.Hour)
	sum := scaleReport{Records: records, RiskRecords: riskRecords, Applicants: applicants, Plugins: plugins, SetupSeconds: setup.Seconds()}
	for r := 1; r <= rounds; r++ {
		rep, err := testnet.Demo(ctx, testnet.DemoOptions{Truth: truth, Run: run, Querier: querier, Checks: checks})
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rep.Rows {
			t.Logf("round %d: %s %s→%s: %s (truth %s) in %.1fs", r, row.Kind, row.Querier, row.Peer, row.Answer, row.Want, row.Elapsed.Seconds())
			sum.Queries = append(sum.Queries, scaleQuery{Round: r, Kind: row.Kind, Answer: row.Answer, Want: row.Want, OK: row.OK, Seconds: row.Elapsed.Seconds()})
		}
		if !rep.OK() {
			t.Fatalf("round %d: wrong answers: %+v", r, rep.Failed())
		}
		sum.ExactRounds++
	}

	stopWatch()
	for _, n := range live {
		m, err := procMemory(n.Pid)
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		pk := peaks[n.Name]
		t.Logf("%s (pid %d): peak RSS %d MiB: peak anonymous %d MiB, peak file-backed %d MiB (the store's memory map)",
			n.Name, n.Pid, m.PeakRSS>>20, pk.Anon>>20, pk.File>>20)
		sum.Nodes = append(sum.Nodes, scaleNode{Name: n.Name, PeakRSSMiB: m.PeakRSS >> 20, PeakAnonMiB: pk.Anon >> 20, PeakFileMiB: pk.File >> 20})
		if pk.Anon > maxRSS {
			t.Errorf("%s: peak anonymous RSS %d MiB, want at most %d MiB", n.Name, pk.Anon>>20, maxRSS>>20)
		}
	}
	t.Logf("%d/%d rounds exact at %d × %d records (setup %.1fs)", sum.ExactRounds, rounds, records, records, setup.Seconds())
	if path := os.Getenv("XNODE_SCALE_REPORT"); path != "" {
		b, _ := json.MarshalIndent(sum, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Error(err)
		}
	}
}

type scaleReport struct {
	Records      int          `json:"records"`
	RiskRecords  int          `json:"risk_records"`
	Applicants   int          `json:"applicants"`
	Plugins      []string     `json:"plugins"`
	SetupSeconds float64      `json:"setup_seconds"`
	ExactRounds  int          `json:"exact_rounds"`
	Queries      []scaleQuery `json:"queries"`
	Nodes        []scaleNode  `json:"nodes"`
}

type scaleQuery struct {
	Round   int     `json:"round"`
	Kind    string  `json:"kind"`
	Answer  string  `json:"answer"`
	Want    string  `json:"want"`
	OK      bool    `json:"ok"`
	Seconds float64 `json:"seconds"`
}

type scaleNode struct {
	Name        string `json:"name"`
	PeakRSSMiB  int64  `json:"peak_rss_mib"`
	PeakAnonMiB int64  `json:"peak_anon_mib"`
	PeakFileMiB int64  `json:"peak_file_mib"`
}

// applicantsCheck imports the first n client rows of querier as the
// dataset applicants and returns the risk check c over it, judged against
// the truth restricted to those rows.
func applicantsCheck(t *testing.T, st *testnet.State, querier string, n int, c testnet.Check) testnet.Check {
	t.Helper()
	req := testnet.ImportRequests(st.Data.Dir, querier)[0]
	ids, err := writeHead(req.File, filepath.Join(st.Data.Dir, querier, "applicants.csv"), n)
	if err != nil {
		t.Fatal(err)
	}
	req.Name, req.File = datasetApplicants, filepath.Join(st.Data.Dir, querier, "applicants.csv")
	node, err := st.Node(querier)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := api.ClientForDir(node.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.ImportDataset(context.Background(), req, nil); err != nil {
		t.Fatalf("failed to import the applicants: %v", err)
	}
	judge := c.Compare
	c.Dataset = datasetApplicants
	c.Compare = func(q api.Query, tr *synth.Truth, querier, peer string) testnet.Outcome {
		sub := *tr
		sub.Pairs = slices.Clone(tr.Pairs)
		for i := range sub.Pairs {
			sub.Pairs[i].RiskHits = slices.DeleteFunc(slices.Clone(sub.Pairs[i].RiskHits), func(e synth.RiskEntry) bool { return !ids[e.ID] })
		}
		return judge(q, &sub, querier, peer)
	}
	return c
}

// writeHead copies the header and the first n rows of the CSV file src to
// dst and returns the canonical IDs (first column) of those rows.
func writeHead(src, dst string, n int) (map[string]bool, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	r, w := csv.NewReader(bufio.NewReader(in)), csv.NewWriter(out)
	ids := map[string]bool{}
	for i := 0; i <= n; i++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if i > 0 {
			id, err := synth.CanonicalID(rec[0])
			if err != nil {
				return nil, fmt.Errorf("%s row %d: %w", src, i, err)
			}
			ids[id] = true
		}
		if err := w.Write(rec); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return ids, w.Error()
}

// memory is a process's resident memory from /proc/PID/status.
type memory struct{ PeakRSS, RSS, Anon, File int64 }

func procMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("failed to read the memory of pid %d: %w", pid, err)
	}
	var m memory
	fields := map[string]*int64{"VmHWM:": &m.PeakRSS, "VmRSS:": &m.RSS, "RssAnon:": &m.Anon, "RssFile:": &m.File}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) >= 2 && fields[f[0]] != nil {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return memory{}, fmt.Errorf("pid %d: %q: %w", pid, line, err)
			}
			*fields[f[0]] = kb << 10
		}
	}
	if m.PeakRSS == 0 {
		return memory{}, fmt.Errorf("pid %d: no VmHWM in /proc/%d/status", pid, pid)
	}
	return m, nil
}

// watchMemory samples the anonymous and file-backed RSS of nodes every
// second until stop is called, and keeps each node's peak of each.
func watchMemory(t *testing.T, nodes []testnet.NodeState) (peaks map[string]memory, stop func()) {
	peaks = map[string]memory{}
	done, quit := make(chan struct{}), make(chan struct{})
	sample := func() {
		for _, n := range nodes {
			m, err := procMemory(n.Pid)
			if err != nil {
				continue // reported once the queries end
			}
			pk := peaks[n.Name]
			pk.Anon, pk.File = max(pk.Anon, m.Anon), max(pk.File, m.File)
			peaks[n.Name] = pk
		}
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			sample()
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	var once bool
	stop = func() {
		if !once {
			once = true
			close(quit)
			<-done
			sample()
		}
	}
	t.Cleanup(stop)
	return peaks, stop
}

// goroutines reads go_goroutines from a node's /metrics.
func goroutines(ctx context.Context, apiAddr string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+apiAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no go_goroutines in %s/metrics", apiAddr)
}
