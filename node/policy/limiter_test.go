package policy_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xnode/node/policy"
	"xnode/node/store"
)

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestLimiterSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	d := policy.Decision{Verdict: policy.Allow, Rule: "overlap-any", MaxQueriesPerDay: 3}
	// 10:00 in Shanghai on 1 June.
	now := time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC)

	st := openStore(t, path)
	l := policy.NewLimiter(st, shanghai)
	for i := range 2 {
		if err := l.Take("peerB", d, now); err != nil {
			t.Fatalf("Take %d: %v", i+1, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, path)
	defer st.Close()
	l = policy.NewLimiter(st, shanghai)
	if q, _, err := l.Used("peerB", "overlap-any", now); err != nil || q != 2 {
		t.Errorf("Used after reopen = %d, %v; want 2", q, err)
	}
	if err := l.Take("peerB", d, now); err != nil {
		t.Fatalf("Take 3: %v", err)
	}
	err = l.Take("peerB", d, now.Add(time.Hour))
	if !errors.Is(err, policy.ErrRateLimited) || !strings.Contains(err.Error(), "overlap-any") || !strings.Contains(err.Error(), "2026-06-02T00:00:00+08:00") {
		t.Errorf("Take 4 = %v, want ErrRateLimited naming the rule and the reset time", err)
	}
	if q, _, _ := l.Used("peerB", "overlap-any", now); q != 3 {
		t.Errorf("a refused Take was counted: used = %d, want 3", q)
	}
	// Other peers and other rules have their own counts.
	if err := l.Take("peerC", d, now); err != nil {
		t.Errorf("Take by another peer: %v", err)
	}
	if err := l.Take("peerB", policy.Decision{Verdict: policy.Manual, Rule: "match", MaxQueriesPerDay: 1}, now); err != nil {
		t.Errorf("Take under another rule: %v", err)
	}
	// 23:59 Shanghai is still the same day; 00:00 Shanghai (16:00 UTC) is the next.
	if err := l.Take("peerB", d, time.Date(2026, 6, 1, 15, 59, 0, 0, time.UTC)); !errors.Is(err, policy.ErrRateLimited) {
		t.Errorf("Take at 23:59 Shanghai = %v, want ErrRateLimited", err)
	}
	if err := l.Take("peerB", d, time.Date(2026, 6, 1, 16, 0, 0, 0, time.UTC)); err != nil {
		t.Errorf("Take at midnight Shanghai = %v, want a fresh day", err)
	}
	if err := st.Check(); err != nil {
		t.Error(err)
	}
}

func TestLimiterNoLimitAndDeny(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "store.db"))
	defer st.Close()
	l := policy.NewLimiter(st, nil)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	unlimited := policy.Decision{Verdict: policy.Allow, Rule: "r"}
	for range 50 {
		if err := l.Take("p", unlimited, now); err != nil {
			t.Fatalf("Take without a limit: %v", err)
		}
	}
	if q, _, _ := l.Used("p", "r", now); q != 50 {
		t.Errorf("Used = %d, want 50 (counted even without a limit)", q)
	}
	if err := l.Take("p", policy.Decision{Verdict: policy.Deny, Rule: "r"}, now); err == nil {
		t.Error("Take(deny decision) succeeded, want an error")
	}
	if err := l.Take("", unlimited, now); err == nil {
		t.Error("Take without a peer succeeded, want an error")
	}
}

func TestLimiterEvaluationBudget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	st := openStore(t, path)
	l := policy.NewLimiter(st, nil)
	d := policy.Decision{Verdict: policy.Allow, Rule: "risk", EvaluationBudget: 1000}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := l.Spend("p", d, 600, now); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = openStore(t, path)
	defer st.Close()
	l = policy.NewLimiter(st, nil)
	if err := l.Spend("p", d, 401, now); !errors.Is(err, policy.ErrBudgetExhausted) {
		t.Errorf("Spend over budget = %v, want ErrBudgetExhausted", err)
	}
	if err := l.Spend("p", d, 400, now); err != nil {
		t.Errorf("Spend up to the budget = %v", err)
	}
	if _, e, _ := l.Used("p", "risk", now); e != 1000 {
		t.Errorf("evaluations used = %d, want 1000", e)
	}
	// Days before yesterday are pruned; yesterday's counts are kept.
	later := now.AddDate(0, 0, 2)
	if err := l.Spend("p", d, 1, later); err != nil {
		t.Fatal(err)
	}
	if _, e, _ := l.Used("p", "risk", now); e != 0 {
		t.Errorf("evaluations two days ago = %d after pruning, want 0", e)
	}
}
