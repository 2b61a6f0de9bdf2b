package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"xnode/node/api"
	"xnode/testnet"
	"xnode/testnet/synth"
)

func TestTestnetReportDemo(t *testing.T) {
	okRow := testnet.Row{Kind: "overlap", Querier: "node1", Peer: "node2", Answer: "7", Want: "7", OK: true}
	wrongRow := testnet.Row{Kind: "overlap", Querier: "node1", Peer: "node3", Answer: "8", Want: "7", Detail: "overlap 8, want 7"}
	tests := []struct {
		name     string
		rows     []testnet.Row
		wantCode int // 0: no error
	}{
		{"all right", []testnet.Row{okRow, okRow}, 0},
		{"one wrong", []testnet.Row{okRow, wrongRow}, exitWrong},
		{"nothing checked", nil, exitWrong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := reportDemo(&testnet.Report{Rows: tc.rows}, time.Second, false, &out)
			code := 0
			var ee *exitError
			if errors.As(err, &ee) {
				code = ee.code
			} else if err != nil {
				code = exitFailure
			}
			if code != tc.wantCode {
				t.Errorf("reportDemo(%s) = %v (code %d), want code %d", tc.name, err, code, tc.wantCode)
			}
			if tc.wantCode == exitWrong && len(tc.rows) > 0 && !strings.Contains(out.String(), "WRONG") {
				t.Errorf("the table does not flag the wrong answer:\n%s", out.String())
			}
		})
	}
}

func TestTestnetUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"testnet", "up"}, exitUsage, "--dir"},
		{[]string{"testnet", "down"}, exitUsage, "--dir"},
		{[]string{"testnet", "down", "--dir", t.TempDir()}, exitFailure, "testnet up --dir"},
		{[]string{"testnet", "up", "--dir", t.TempDir(), "--nodes", "0"}, exitFailure, "--nodes 0"},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("xnode %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, errOut.String(), tc.code, tc.want)
		}
	}
}

// buildXnode builds this command into a temporary directory.
func buildXnode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xnode")
	start := time.Now()
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built xnode in %.1fs", time.Since(start).Seconds())
	return bin
}

// runXnode runs the binary and returns stdout, stderr and the exit code.
func runXnode(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &ee):
		return out.String(), errOut.String(), ee.ExitCode()
	}
	t.Fatalf("xnode %s: %v", strings.Join(args, " "), err)
	return "", "", 0
}

// gone reports whether pid no longer runs: signal 0 fails, or (while init
// has not reaped it yet) the process is a zombie.
func gone(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// TestTestnetUpDemoDown runs the real binary: up a 3-node testnet, refuse a
// second up, check every built-in query against the truth, prove that a
// wrong answer fails the demo with exit code 3, stop it and check no node
// survives; then the self-contained demo in a temporary directory.
func TestTestnetUpDemoDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real node processes; skipped with -short")
	}
	t0 := time.Now()
	bin := buildXnode(t)
	dir := filepath.Join(t.TempDir(), "tn")
	t.Cleanup(func() { runXnode(t, bin, "testnet", "down", "--dir", dir) })

	out, errOut, code := runXnode(t, bin, "testnet", "up", "--dir", dir, "--nodes", "3", "--records", "2000", "--json")
	if code != 0 {
		t.Fatalf("testnet up: exit %d\n%s", code, errOut)
	}
	var st testnet.State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("testnet up --json printed no state: %v\n%s", err, out)
	}
	if len(st.Nodes) != 3 || st.Data == nil || !st.Data.Imported {
		t.Fatalf("testnet up state: %d nodes, data %+v; want 3 nodes with imported data", len(st.Nodes), st.Data)
	}
	var pids []int
	for _, n := range st.Nodes {
		if n.Pid == 0 || gone(n.Pid) || n.Status != testnet.StatusRunning {
			t.Fatalf("node %s: pid %d status %s, want a running process", n.Name, n.Pid, n.Status)
		}
		pids = append(pids, n.Pid)
		// Every normal command works against a node's dir.
		c, err := api.ClientForDir(n.Dir)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := c.ListDatasets(context.Background())
		if err != nil || len(ds) != 2 {
			t.Errorf("%s datasets = %+v, %v; want clients and risklist", n.Name, ds, err)
		}
	}

	_, errOut, code = runXnode(t, bin, "testnet", "up", "--dir", dir)
	if code != exitFailure || !strings.Contains(errOut, "already running") {
		t.Errorf("second testnet up: exit %d, stderr %q; want exit 1 and 'already running'", code, errOut)
	}

	out, errOut, code = runXnode(t, bin, "testnet", "demo", "--dir", dir, "--json")
	if code != 0 {
		t.Fatalf("testnet demo: exit %d\n%s\n%s", code, out, errOut)
	}
	var rep testnet.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("testnet demo --json: %v\n%s", err, out)
	}
	truth, err := synth.ReadTruth(st.Data.Truth)
	if err != nil {
		t.Fatal(err)
	}
	if want := testnet.ExpectedRows(testnet.Checks, 3); len(rep.Rows) != want || !rep.OK() {
		t.Errorf("demo report: %d rows, OK %v; want %d rows, all OK: %+v", len(rep.Rows), rep.OK(), want, rep.Rows)
	}
	for _, row := range rep.Rows {
		if row.Kind != api.KindOverlap {
			continue
		}
		pt, err := truth.Pair(row.Querier, row.Peer)
		if err != nil {
			t.Fatal(err)
		}
		if row.Kind == api.KindOverlap && row.Answer != strconv.Itoa(pt.Overlap) {
			t.Errorf("overlap %s→%s answered %s, truth.json says %d", row.Querier, row.Peer, row.Answer, pt.Overlap)
		}
	}

	// The same demo with one answer corrupted on its way back must exit 3.
	corrupt := testnet.APIQueryFunc(&st, time.Minute)
	var stdout, stderr bytes.Buffer
	o := testnetOptions{Dir: dir, run: func(ctx context.Context, querier string, req api.QueryRequest) (api.Query, error) {
		q, err := corrupt(ctx, querier, req)
		if err == nil && req.Plugin == api.KindOverlap && req.Peers[0] == "node2" {
			q.Summary.PerPeer["node2"]++
		}
		return q, err
	}}
	err = runTestnetDemo(context.Background(), o, &stdout, &stderr)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitWrong {
		t.Errorf("demo with a wrong overlap: %v, want exit code %d\n%s", err, exitWrong, stdout.String())
	}
	if !regexp.MustCompile(`overlap\s+node1→node2.*WRONG`).MatchString(stdout.String()) {
		t.Errorf("demo table does not flag overlap node1→node2:\n%s", stdout.String())
	}

	out, errOut, code = runXnode(t, bin, "testnet", "down", "--dir", dir)
	if code != 0 {
		t.Fatalf("testnet down: exit %d\n%s%s", code, out, errOut)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("node pid %d survived testnet down", pid)
		}
	}
	after, err := testnet.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range after.Nodes {
		if n.Status != testnet.StatusStopped || n.Pid != 0 {
			t.Errorf("after down, %s: status %s pid %d; want stopped, 0", n.Name, n.Status, n.Pid)
		}
	}
	if _, errOut, code := runXnode(t, bin, "testnet", "down", "--dir", dir); code != 0 {
		t.Errorf("second testnet down: exit %d, %s; want it to accept stopped nodes", code, errOut)
	}

	// The self-contained demo: temporary dir, removed at the end. The demo
	// removes it only after Down stopped every node, so its absence also
	// says no node survived.
	out, errOut, code = runXnode(t, bin, "testnet", "demo", "--nodes", "2", "--records", "500")
	if code != 0 {
		t.Fatalf("testnet demo without --dir: exit %d\n%s\n%s", code, out, errOut)
	}
	m := regexp.MustCompile(`temporary directory (\S+)`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("testnet demo did not name its temporary directory:\n%s", errOut)
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("testnet demo left %s behind (stat: %v)", m[1], err)
	}
	t.Logf("whole test took %.1fs", time.Since(t0).Seconds())
}
