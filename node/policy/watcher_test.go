package policy_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"xnode/node/policy"
)

func writePolicy(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, policy.FileName), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const allowOverlap = `
version = 1
[[rule]]
name = "overlap"
plugin = "overlap"
datasets = ["customers"]
peers = ["*"]
approval = "auto"
min_set_size = 10
`

var overlapReq = policy.Request{Plugin: "overlap", Dataset: "customers", Peer: policy.Peer{Name: "bank-b"}, QuerierSetSize: 50}

// syncBuffer is a log sink the watcher's goroutine may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestWatcherKeepsOldPolicyOnBadFile(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, allowOverlap)
	var logs syncBuffer
	var changes []string
	w, err := policy.Watch(dir, policy.WatchOptions{
		Interval: -1,
		Log:      slog.New(slog.NewTextHandler(&logs, nil)),
		OnChange: func(old, new *policy.Policy) { changes = append(changes, old.Digest()+"->"+new.Digest()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first := w.Current()
	if d := w.Evaluate(overlapReq); d.Verdict != policy.Allow {
		t.Fatalf("initial policy decided %+v, want allow", d)
	}

	writePolicy(t, dir, allowOverlap+"aproval = \"manual\"\n")
	changed, err := w.Reload()
	if err == nil || changed {
		t.Errorf("Reload(bad file) = %v, %v; want an error and no change", changed, err)
	}
	if w.Current() != first {
		t.Error("the invalid file replaced the policy in force")
	}
	if d := w.Evaluate(overlapReq); d.Verdict != policy.Allow {
		t.Errorf("after a bad file the policy decided %+v, want the old allow", d)
	}
	if !strings.Contains(logs.String(), "keeping the previous policy") || !strings.Contains(logs.String(), "rule.aproval") {
		t.Errorf("log = %q, want the rejection and the bad key", logs.String())
	}

	writePolicy(t, dir, strings.Replace(allowOverlap, `"auto"`, `"manual"`, 1))
	if changed, err := w.Reload(); err != nil || !changed {
		t.Fatalf("Reload(good file) = %v, %v; want a change", changed, err)
	}
	if d := w.Evaluate(overlapReq); d.Verdict != policy.Manual {
		t.Errorf("after the fix the policy decided %+v, want manual", d)
	}
	if changed, err := w.Reload(); err != nil || changed {
		t.Errorf("Reload(same file) = %v, %v; want no change", changed, err)
	}

	if err := os.Remove(filepath.Join(dir, policy.FileName)); err != nil {
		t.Fatal(err)
	}
	if changed, err := w.Reload(); err != nil || !changed {
		t.Fatalf("Reload(removed file) = %v, %v; want a change", changed, err)
	}
	if d := w.Evaluate(overlapReq); d.Verdict != policy.Deny || d.Rule != policy.DefaultDeny {
		t.Errorf("with the file removed the policy decided %+v, want default-deny", d)
	}
	if len(changes) != 2 {
		t.Errorf("OnChange called %d times (%v), want 2", len(changes), changes)
	}
	if err := w.Close(); err != nil {
		t.Error(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestWatcherPollsFile(t *testing.T) {
	dir := t.TempDir()
	changed := make(chan *policy.Policy, 4)
	w, err := policy.Watch(dir, policy.WatchOptions{
		Interval: 10 * time.Millisecond,
		OnChange: func(_, new *policy.Policy) { changed <- new },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if d := w.Evaluate(overlapReq); d.Verdict != policy.Deny {
		t.Fatalf("without a file the policy decided %+v, want deny", d)
	}
	writePolicy(t, dir, allowOverlap)
	select {
	case p := <-changed:
		if len(p.Rules) != 1 {
			t.Errorf("reloaded policy has %d rules, want 1", len(p.Rules))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher did not pick up the new file within 5s")
	}
	if d := w.Evaluate(overlapReq); d.Verdict != policy.Allow {
		t.Errorf("after the reload the policy decided %+v, want allow", d)
	}
}

func TestWatchRefusesBadFileAtStart(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "version = 1\n[[rule]]\nname = \"x\"\n")
	if w, err := policy.Watch(dir, policy.WatchOptions{Interval: -1}); err == nil {
		w.Close()
		t.Error("Watch(invalid file) succeeded, want an error")
	}
}
