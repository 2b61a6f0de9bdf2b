package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xnode/node/api"
	"xnode/node/api/apitest"
)

func auditNode(t *testing.T) (*apitest.Fake, string) {
	t.Helper()
	f, dir := fakeNode(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, e := range []struct{ kind, q string }{
		{"import", ""}, {"proposal", "q1"}, {"approval", "q1"}, {"run", "q1"}, {"proposal", "q2"}, {"denial", "q2"},
	} {
		f.AuditLog = append(f.AuditLog, api.AuditEntry{Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second),
			Kind: e.kind, QueryID: e.q, Actor: "alpha", Signer: "12D3KooWAlpha",
			Details: json.RawMessage(fmt.Sprintf(`{ "n": %d }`, i+1)), Hash: fmt.Sprintf("%064x", i+1)})
	}
	return f, dir
}

func TestAuditShow(t *testing.T) {
	_, dir := auditNode(t)
	code, out, errOut := xnode(t, "audit", "show", "--dir", dir)
	if code != 0 {
		t.Fatalf("audit show exited %d: %s", code, errOut)
	}
	wantContains(t, "audit show", out, "SEQ", "KIND", "QUERY", "import", "denial", `{"n":6}`)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 7 {
		t.Errorf("audit show printed %d lines, want a header and 6 entries:\n%s", len(lines), out)
	}

	code, out, _ = xnode(t, "audit", "show", "--dir", dir, "--query", "q1", "--json")
	var es []api.AuditEntry
	lastJSONLine(t, out, &es)
	if code != 0 || len(es) != 3 || es[0].Kind != "proposal" || es[2].Kind != "run" {
		t.Errorf("audit show --query q1 --json = %d %+v, want q1's proposal, approval and run", code, es)
	}
	code, out, _ = xnode(t, "audit", "show", "--dir", dir, "--kind", "proposal", "--limit", "1", "--json")
	lastJSONLine(t, out, &es)
	if code != 0 || len(es) != 1 || es[0].QueryID != "q2" {
		t.Errorf("audit show --kind proposal --limit 1 = %d %+v, want q2's proposal", code, es)
	}
	code, out, _ = xnode(t, "audit", "show", "--dir", dir, "--query", "q9")
	if code != 0 || !strings.Contains(out, "no audit entries match") {
		t.Errorf("audit show --query q9 = %d %q, want 0 saying none match", code, out)
	}
	code, _, errOut = xnode(t, "audit", "show", "--dir", dir, "--limit", "-2")
	if code != exitUsage || !strings.Contains(errOut, "--limit -2") {
		t.Errorf("audit show --limit -2 = %d %q, want %d", code, errOut, exitUsage)
	}
}

func TestAuditVerify(t *testing.T) {
	f, dir := auditNode(t)
	code, out, errOut := xnode(t, "audit", "verify", "--dir", dir)
	if code != 0 {
		t.Fatalf("audit verify of a good chain exited %d: %s", code, errOut)
	}
	wantContains(t, "audit verify", out, "audit chain OK: 6 entries verified, head "+fmt.Sprintf("%064x", 6))

	f.AuditReport = api.AuditReport{Entries: 6, Head: fmt.Sprintf("%064x", 6), FirstBadSeq: 4, Problem: "hash mismatch",
		Detail: "entry 4 does not hash to what entry 5 links"}
	code, out, errOut = xnode(t, "audit", "verify", "--dir", dir)
	if code != exitFailure {
		t.Errorf("audit verify of a broken chain exited %d, want %d", code, exitFailure)
	}
	if strings.Contains(out, "OK") {
		t.Errorf("audit verify of a broken chain printed %q", out)
	}
	wantContains(t, "stderr", errOut, "the audit chain is broken at entry 4 of 6: hash mismatch (entry 4 does not hash to what entry 5 links)")

	code, out, errOut = xnode(t, "audit", "verify", "--dir", dir, "--json")
	var rep api.AuditReport
	lastJSONLine(t, out, &rep)
	if code != exitFailure || rep.OK || rep.FirstBadSeq != 4 {
		t.Errorf("audit verify --json of a broken chain = %d %+v, want %d and the report naming entry 4", code, rep, exitFailure)
	}
	wantContains(t, "stderr", errOut, "broken at entry 4")

	f.Err = fmt.Errorf("store is closed: %w", api.ErrUnavailable)
	code, _, errOut = xnode(t, "audit", "verify", "--dir", dir)
	if code != exitFailure || !strings.Contains(errOut, "failed to verify the audit chain: store is closed") {
		t.Errorf("audit verify with the store closed = %d %q, want %d saying so", code, errOut, exitFailure)
	}
}

func TestAuditExport(t *testing.T) {
	f, dir := auditNode(t)
	code, out, errOut := xnode(t, "audit", "export", "--dir", dir)
	if code != 0 {
		t.Fatalf("audit export exited %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 {
		t.Fatalf("audit export printed %d lines, want 6:\n%s", len(lines), out)
	}
	for i, l := range lines {
		var e api.AuditEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Seq != uint64(i+1) || e.Hash != f.AuditLog[i].Hash {
			t.Errorf("export line %d = %s (%v), want entry %d", i+1, l, err, i+1)
		}
	}

	file := filepath.Join(t.TempDir(), "audit.jsonl")
	code, out, errOut = xnode(t, "audit", "export", "--dir", dir, "--format", "jsonl", "--out", file)
	if code != 0 || out != "" {
		t.Fatalf("audit export --out = %d, stdout %q, stderr %s; want 0 and nothing on stdout", code, out, errOut)
	}
	wantContains(t, "stderr", errOut, "exported 6 audit entries to "+file)
	b, err := os.ReadFile(file)
	if err != nil || strings.Count(string(b), "\n") != 6 {
		t.Errorf("export file = %q, %v; want 6 lines", b, err)
	}

	code, _, errOut = xnode(t, "audit", "export", "--dir", dir, "--format", "csv")
	if code != exitUsage || !strings.Contains(errOut, "only as jsonl") {
		t.Errorf("audit export --format csv = %d %q, want %d", code, errOut, exitUsage)
	}
}

// brokenExport fails its export after the first entry.
type brokenExport struct{ *apitest.Fake }

func (b brokenExport) ExportAudit(ctx context.Context, w io.Writer) error {
	if _, err := io.WriteString(w, `{"seq":1}`+"\n"); err != nil {
		return err
	}
	return fmt.Errorf("entry 2 is unreadable: %w", api.ErrUnavailable)
}

func TestAuditExportFailsPartWay(t *testing.T) {
	srv := apitest.Serve(t, brokenExport{apitest.NewFake()})
	dir := apitest.DataDir(t, srv)
	out := t.TempDir()
	file := filepath.Join(out, "audit.jsonl")
	code, _, errOut := xnode(t, "audit", "export", "--dir", dir, "--out", file)
	if code != exitFailure || !strings.Contains(errOut, "entry 2 is unreadable") || !strings.Contains(errOut, "nothing was written there") {
		t.Errorf("audit export that fails part way = %d %q, want %d naming entry 2", code, errOut, exitFailure)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("a failed export left %v in the output directory, want nothing", ents)
	}
	code, _, errOut = xnode(t, "audit", "export", "--dir", dir)
	if code != exitFailure || !strings.Contains(errOut, "entry 2 is unreadable") {
		t.Errorf("audit export to stdout that fails part way = %d %q, want %d", code, errOut, exitFailure)
	}
}
