package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"xnode/cmd/xnode/internal/bench"
)

func TestBenchPSIJSON(t *testing.T) {
	for _, mode := range []string{"intersection", "intersection-both", "cardinality"} {
		t.Run(mode, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run([]string{"bench", "psi-ecdh", "--n", "300", "--m", "200", "--overlap", "0.25", "--mode", mode, "--json"}, &out, &errOut)
			if code != exitOK {
				t.Fatalf("exit code %d, stderr: %s", code, errOut.String())
			}
			var rep bench.Report
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("output is not one JSON report: %v\n%s", err, out.String())
			}
			if !rep.Correct || rep.Overlap != 50 || rep.Cardinality != 50 {
				t.Errorf("report: correct=%v overlap=%d cardinality=%d, want true/50/50", rep.Correct, rep.Overlap, rep.Cardinality)
			}
			if rep.FloorSeconds <= 0 || rep.RatioToFloor <= 0 || rep.BytesQToR == 0 || rep.BytesRToQ == 0 {
				t.Errorf("report lacks floor or byte counts: %+v", rep)
			}
		})
	}
}

func TestBenchPSIUsageErrors(t *testing.T) {
	cases := [][]string{
		{"bench", "psi-ecdh", "--suite", "rot13"},
		{"bench", "psi-ecdh", "--mode", "union"},
		{"bench", "psi-ecdh", "--overlap", "1.5"},
		{"bench", "psi-ecdh", "--batch", "0"},
		{"bench", "psi-ecdh", "--no-such-flag"},
		{"no-such-command"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(args, &out, &errOut); code != exitUsage {
				t.Errorf("exit code %d, want %d (usage); stderr: %s", code, exitUsage, errOut.String())
			}
			if errOut.Len() == 0 {
				t.Error("no error message")
			}
		})
	}
}

func TestSyntheticSetsHaveExactOverlap(t *testing.T) {
	x, y, k := bench.Sets(1000, 700, 0.4, 7)
	inX := map[string]bool{}
	for _, v := range x {
		if inX[string(v)] {
			t.Fatalf("duplicate %s in x", v)
		}
		inX[string(v)] = true
	}
	shared := 0
	for _, v := range y {
		if inX[string(v)] {
			shared++
		}
	}
	if k != 280 || shared != k {
		t.Errorf("Sets(1000, 700, 0.4) overlap = %d (counted %d), want 280", k, shared)
	}
}
