package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"xnode/node/api"
	"xnode/node/api/apitest"
)

// withPending adds r1, a query of beta awaiting this node's approval, and
// d1, one already done.
func withPending(f *apitest.Fake) {
	f.Queries["r1"] = api.Query{ID: "r1", Kind: "overlap", Role: "responder", Status: api.StatusAwaitingApproval,
		Querier: "beta", Dataset: "loans", Peers: []string{"alpha"},
		PeerStates: []api.PeerState{{Peer: "alpha", Status: api.StatusAwaitingApproval, Rule: "manual-approval"}}}
	f.Queries["d1"] = api.Query{ID: "d1", Kind: "overlap", Role: "responder", Status: api.StatusDone}
}

func withAudit(f *apitest.Fake) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, e := range []struct{ kind, q string }{
		{"import", ""}, {"proposal", "q1"}, {"approval", "q1"}, {"run", "q1"}, {"proposal", "q2"}, {"denial", "q2"},
	} {
		f.AuditLog = append(f.AuditLog, api.AuditEntry{Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second),
			Kind: e.kind, QueryID: e.q, Actor: "alpha", Signer: "12D3KooWAlpha",
			Details: json.RawMessage(`{"n":` + fmt.Sprint(i) + `}`), Hash: fmt.Sprintf("%064x", i+1)})
	}
}

func TestServerNewRoutes(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "sum-plugin")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body string
		fake                     func(*apitest.Fake)
		want                     int
		wantCode                 string
		check                    func(t *testing.T, f *apitest.Fake, body []byte)
	}{
		{name: "pending", method: "GET", path: "/v1/queries/pending", fake: withPending, want: 200, check: func(t *testing.T, _ *apitest.Fake, b []byte) {
			var v []api.Query
			mustJSON(t, b, &v)
			if len(v) != 1 || v[0].ID != "r1" || v[0].Querier != "beta" {
				t.Errorf("pending = %+v, want only r1 from beta", v)
			}
		}},
		{name: "pending is not a query id", method: "GET", path: "/v1/queries/pending", want: 200, check: func(t *testing.T, _ *apitest.Fake, b []byte) {
			if strings.TrimSpace(string(b)) != "[]" {
				t.Errorf("GET /v1/queries/pending with nothing pending = %s, want [] (not a 404 of a query called pending)", b)
			}
		}},
		{name: "pending backend down", method: "GET", path: "/v1/queries/pending", fake: func(f *apitest.Fake) { f.Err = api.ErrUnavailable },
			want: 503, wantCode: api.CodeUnavailable},
		{name: "post pending", method: "POST", path: "/v1/queries/pending", want: 405, wantCode: api.CodeMethod},
		{name: "approve", method: "POST", path: "/v1/queries/r1/approve", fake: withPending, want: 200, check: func(t *testing.T, f *apitest.Fake, b []byte) {
			var v api.Query
			mustJSON(t, b, &v)
			if v.ID != "r1" || v.Status != api.StatusRunning || f.Queries["r1"].Status != api.StatusRunning {
				t.Errorf("approved query = %+v, want r1 running", v)
			}
		}},
		{name: "approve with {}", method: "POST", path: "/v1/queries/r1/approve", body: "{}", fake: withPending, want: 200},
		{name: "approve with a body", method: "POST", path: "/v1/queries/r1/approve", body: `{"reason":"x"}`, fake: withPending, want: 400, wantCode: api.CodeInvalid,
			check: func(t *testing.T, f *apitest.Fake, _ []byte) {
				if f.Queries["r1"].Status != api.StatusAwaitingApproval {
					t.Errorf("a refused approve changed r1 to %s", f.Queries["r1"].Status)
				}
			}},
		{name: "approve unknown", method: "POST", path: "/v1/queries/r9/approve", want: 404, wantCode: api.CodeNotFound},
		{name: "approve finished", method: "POST", path: "/v1/queries/d1/approve", fake: withPending, want: 409, wantCode: api.CodeConflict},
		{name: "approve with GET", method: "GET", path: "/v1/queries/r1/approve", want: 405, wantCode: api.CodeMethod},
		{name: "deny", method: "POST", path: "/v1/queries/r1/deny", body: `{"reason":"  not this quarter "}`, fake: withPending, want: 200,
			check: func(t *testing.T, f *apitest.Fake, b []byte) {
				var v api.Query
				mustJSON(t, b, &v)
				if v.Status != api.StatusDenied || v.Error != "not this quarter" {
					t.Errorf("denied query = %+v, want status denied with the trimmed reason", v)
				}
			}},
		{name: "deny without reason", method: "POST", path: "/v1/queries/r1/deny", body: `{"reason":" "}`, fake: withPending, want: 400, wantCode: api.CodeInvalid,
			check: func(t *testing.T, f *apitest.Fake, b []byte) {
				if !strings.Contains(string(b), "reason") || f.Queries["r1"].Status != api.StatusAwaitingApproval {
					t.Errorf("deny without a reason = %s (r1 %s), want an error about the reason and r1 untouched", b, f.Queries["r1"].Status)
				}
			}},
		{name: "deny no body", method: "POST", path: "/v1/queries/r1/deny", fake: withPending, want: 400, wantCode: api.CodeInvalid},
		{name: "deny unknown field", method: "POST", path: "/v1/queries/r1/deny", body: `{"why":"x"}`, fake: withPending, want: 400, wantCode: api.CodeInvalid},
		{name: "deny unknown", method: "POST", path: "/v1/queries/r9/deny", body: `{"reason":"x"}`, want: 404, wantCode: api.CodeNotFound},
		{name: "deny finished", method: "POST", path: "/v1/queries/d1/deny", body: `{"reason":"x"}`, fake: withPending, want: 409, wantCode: api.CodeConflict},
		{name: "plugins", method: "GET", path: "/v1/plugins", want: 200, check: func(t *testing.T, _ *apitest.Fake, b []byte) {
			var v []api.PluginInfo
			mustJSON(t, b, &v)
			if len(v) != 2 || v[0].Name != "match" || v[1].Name != "overlap" || !v[1].Builtin || !strings.HasPrefix(v[1].Digest, "sha256:") {
				t.Errorf("plugins = %+v, want the built-ins match and overlap with digests", v)
			}
		}},
		{name: "plugins empty is []", method: "GET", path: "/v1/plugins", fake: func(f *apitest.Fake) { f.Plugins = nil }, want: 200,
			check: func(t *testing.T, _ *apitest.Fake, b []byte) {
				if strings.TrimSpace(string(b)) != "[]" {
					t.Errorf("no plugins body = %s, want []", b)
				}
			}},
		{name: "install path", method: "POST", path: "/v1/plugins", body: `{"path":"` + exe + `"}`, want: 201, check: func(t *testing.T, f *apitest.Fake, b []byte) {
			var v api.PluginInfo
			mustJSON(t, b, &v)
			if v.Name != "sum-plugin" || v.Path != exe || len(f.Plugins) != 3 {
				t.Errorf("installed = %+v (backend has %d plugins), want sum-plugin at %s added", v, len(f.Plugins), exe)
			}
		}},
		{name: "install builtin", method: "POST", path: "/v1/plugins", body: `{"builtin":"match"}`, want: 201, check: func(t *testing.T, f *apitest.Fake, b []byte) {
			var v api.PluginInfo
			mustJSON(t, b, &v)
			if v.Name != "match" || !v.Builtin || len(f.Installs) != 1 || f.Installs[0].Builtin != "match" {
				t.Errorf("installed = %+v, backend got %+v; want the built-in match", v, f.Installs)
			}
		}},
		{name: "install relative path", method: "POST", path: "/v1/plugins", body: `{"path":"bin/p"}`, want: 400, wantCode: api.CodeInvalid,
			check: func(t *testing.T, f *apitest.Fake, _ []byte) {
				if len(f.Installs) != 0 {
					t.Errorf("a relative path reached the backend: %+v", f.Installs)
				}
			}},
		{name: "install both", method: "POST", path: "/v1/plugins", body: `{"path":"/bin/p","builtin":"match"}`, want: 400, wantCode: api.CodeInvalid},
		{name: "install neither", method: "POST", path: "/v1/plugins", body: `{}`, want: 400, wantCode: api.CodeInvalid},
		{name: "install unknown builtin", method: "POST", path: "/v1/plugins", body: `{"builtin":"nope"}`, want: 400, wantCode: api.CodeInvalid},
		{name: "install missing file", method: "POST", path: "/v1/plugins", body: `{"path":"/nonexistent/p"}`, want: 400, wantCode: api.CodeInvalid},
		{name: "audit", method: "GET", path: "/v1/audit", fake: withAudit, want: 200, check: func(t *testing.T, f *apitest.Fake, b []byte) {
			var v []api.AuditEntry
			mustJSON(t, b, &v)
			if !reflect.DeepEqual(v, f.AuditLog) {
				t.Errorf("audit = %+v, want the whole log %+v", v, f.AuditLog)
			}
		}},
		{name: "audit filtered", method: "GET", path: "/v1/audit?query=q1&kind=approval", fake: withAudit, want: 200, check: func(t *testing.T, _ *apitest.Fake, b []byte) {
			var v []api.AuditEntry
			mustJSON(t, b, &v)
			if len(v) != 1 || v[0].Seq != 3 {
				t.Errorf("audit of q1's approvals = %+v, want entry 3", v)
			}
		}},
		{name: "audit limit", method: "GET", path: "/v1/audit?limit=2", fake: withAudit, want: 200, check: func(t *testing.T, _ *apitest.Fake, b []byte) {
			var v []api.AuditEntry
			mustJSON(t, b, &v)
			if len(v) != 2 || v[0].Seq != 5 || v[1].Seq != 6 {
				t.Errorf("audit limit 2 = %+v, want the last two entries 5 and 6", v)
			}
		}},
		{name: "audit empty is []", method: "GET", path: "/v1/audit", want: 200, check: func(t *testing.T, _ *apitest.Fake, b []byte) {
			if strings.TrimSpace(string(b)) != "[]" {
				t.Errorf("empty audit = %s, want []", b)
			}
		}},
		{name: "audit bad limit", method: "GET", path: "/v1/audit?limit=-1", want: 400, wantCode: api.CodeInvalid},
		{name: "audit word limit", method: "GET", path: "/v1/audit?limit=ten", want: 400, wantCode: api.CodeInvalid},
		{name: "audit internal", method: "GET", path: "/v1/audit", fake: func(f *apitest.Fake) { f.Err = errors.New("bbolt: page 7 corrupt") },
			want: 500, wantCode: api.CodeInternal},
		{name: "verify ok", method: "GET", path: "/v1/audit/verify", fake: withAudit, want: 200, check: func(t *testing.T, _ *apitest.Fake, b []byte) {
			var v api.AuditReport
			mustJSON(t, b, &v)
			if !v.OK || v.Entries != 6 || v.Head == "" {
				t.Errorf("verify = %+v, want ok with 6 entries and a head", v)
			}
		}},
		{name: "verify broken is still 200", method: "GET", path: "/v1/audit/verify", fake: func(f *apitest.Fake) {
			f.AuditReport = api.AuditReport{Entries: 6, FirstBadSeq: 4, Problem: "hash mismatch"}
		}, want: 200, check: func(t *testing.T, _ *apitest.Fake, b []byte) {
			var v api.AuditReport
			mustJSON(t, b, &v)
			if v.OK || v.FirstBadSeq != 4 || v.Problem != "hash mismatch" {
				t.Errorf("verify of a broken chain = %+v, want not ok naming entry 4", v)
			}
		}},
		{name: "verify unavailable", method: "GET", path: "/v1/audit/verify", fake: func(f *apitest.Fake) { f.Err = api.ErrUnavailable },
			want: 503, wantCode: api.CodeUnavailable},
		{name: "export", method: "GET", path: "/v1/audit/export", fake: withAudit, want: 200, check: func(t *testing.T, f *apitest.Fake, b []byte) {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) != len(f.AuditLog) {
				t.Fatalf("export has %d lines, want %d", len(lines), len(f.AuditLog))
			}
			var e api.AuditEntry
			mustJSON(t, []byte(lines[5]), &e)
			if e.Seq != 6 || e.Kind != "denial" {
				t.Errorf("export line 6 = %+v, want entry 6, a denial", e)
			}
		}},
		{name: "export bad format", method: "GET", path: "/v1/audit/export?format=csv", want: 400, wantCode: api.CodeInvalid},
		{name: "export fails before streaming", method: "GET", path: "/v1/audit/export", fake: func(f *apitest.Fake) { f.Err = api.ErrUnavailable },
			want: 503, wantCode: api.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fakeWithDataset()
			if tt.fake != nil {
				tt.fake(f)
			}
			srv := apitest.Serve(t, f)
			status, body := call(t, srv.URL, apitest.Token, tt.method, tt.path, tt.body)
			if status != tt.want {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, status, body, tt.want)
			}
			if tt.wantCode != "" {
				var e api.Error
				if err := json.Unmarshal(body, &e); err != nil || e.Code != tt.wantCode || e.Message == "" {
					t.Errorf("%s %s body = %s, want an Error with code %q and a message", tt.method, tt.path, body, tt.wantCode)
				}
			}
			if tt.check != nil {
				tt.check(t, f, body)
			}
		})
	}
}

func TestServerSubmitPlugin(t *testing.T) {
	tests := []struct {
		name, body string
		want       int
		wantPlugin string
	}{
		{"plugin", `{"plugin":"match","params":{"columns":"amount"},"dataset":"loans","peers":["beta"]}`, 202, "match"},
		{"kind alias", `{"kind":"overlap","dataset":"loans","peers":["beta"]}`, 202, "overlap"},
		{"both equal", `{"plugin":"overlap","kind":"overlap","dataset":"loans","peers":["beta"]}`, 202, "overlap"},
		{"both differ", `{"plugin":"overlap","kind":"match","dataset":"loans","peers":["beta"]}`, 400, ""},
		{"neither", `{"dataset":"loans","peers":["beta"]}`, 400, ""},
		{"not installed", `{"plugin":"risk-check","dataset":"loans","peers":["beta"]}`, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fakeWithDataset()
			srv := apitest.Serve(t, f)
			status, body := call(t, srv.URL, apitest.Token, "POST", "/v1/queries", tt.body)
			if status != tt.want {
				t.Fatalf("POST /v1/queries %s = %d %s, want %d", tt.body, status, body, tt.want)
			}
			if tt.wantPlugin == "" {
				return
			}
			got := f.Submits[0]
			if got.Plugin != tt.wantPlugin || got.Kind != tt.wantPlugin {
				t.Errorf("backend got plugin %q kind %q, want both %q", got.Plugin, got.Kind, tt.wantPlugin)
			}
			var q api.Query
			mustJSON(t, body, &q)
			if q.Plugin == nil || q.Plugin.Name != tt.wantPlugin || q.Plugin.Digest == "" {
				t.Errorf("submitted query plugin = %+v, want %s with its digest", q.Plugin, tt.wantPlugin)
			}
		})
	}
}

// midStreamFailure is a backend whose export fails after writing a line.
type midStreamFailure struct{ *apitest.Fake }

func (m midStreamFailure) ExportAudit(ctx context.Context, w io.Writer) error {
	if _, err := io.WriteString(w, `{"seq":1}`+"\n"); err != nil {
		return err
	}
	return fmt.Errorf("entry 2 is unreadable: %w", api.ErrUnavailable)
}

func TestServerExportTrailer(t *testing.T) {
	srv := apitest.Serve(t, midStreamFailure{fakeWithDataset()})
	req, _ := http.NewRequest("GET", srv.URL+"/v1/audit/export", nil)
	req.Header.Set("Authorization", "Bearer "+apitest.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export = %d %q, want 200 application/x-ndjson once streaming began", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var e api.Error
	if err := json.Unmarshal([]byte(resp.Trailer.Get(api.ExportErrorTrailer)), &e); err != nil || e.Code != api.CodeUnavailable || !strings.Contains(e.Message, "entry 2") {
		t.Errorf("export trailer %s = %q (body %q), want an unavailable Error naming entry 2", api.ExportErrorTrailer, resp.Trailer.Get(api.ExportErrorTrailer), body)
	}
}

func TestClientApprovalsPluginsAudit(t *testing.T) {
	ctx := context.Background()
	f := fakeWithDataset()
	withPending(f)
	withAudit(f)
	srv := apitest.Serve(t, f)
	c := api.NewClient(srv.URL, apitest.Token)

	pend, err := c.PendingQueries(ctx)
	if err != nil || len(pend) != 1 || pend[0].ID != "r1" || len(pend[0].PeerStates) != 1 {
		t.Errorf("PendingQueries = %+v, %v; want r1 with its peer state", pend, err)
	}
	q, err := c.ApproveQuery(ctx, "r1")
	if err != nil || q.Status != api.StatusRunning {
		t.Errorf("ApproveQuery(r1) = %+v, %v; want running", q, err)
	}
	if _, err := c.ApproveQuery(ctx, "r1"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("ApproveQuery(r1) twice error = %v, want ErrConflict", err)
	}
	if _, err := c.ApproveQuery(ctx, "a/b"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("ApproveQuery(a/b) error = %v, want ErrNotFound (the ID escaped, not a route miss)", err)
	}

	f.Queries["r2"] = api.Query{ID: "r2", Role: "responder", Status: api.StatusAwaitingApproval}
	q, err = c.DenyQuery(ctx, "r2", api.DenyRequest{Reason: "set too small"})
	if err != nil || q.Status != api.StatusDenied || q.Error != "set too small" {
		t.Errorf("DenyQuery(r2) = %+v, %v; want denied with the reason", q, err)
	}
	if _, err := c.DenyQuery(ctx, "r3", api.DenyRequest{}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("DenyQuery without a reason error = %v, want ErrInvalid", err)
	}
	if _, err := c.DenyQuery(ctx, "r3", api.DenyRequest{Reason: "x"}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("DenyQuery(r3) error = %v, want ErrNotFound", err)
	}

	ps, err := c.ListPlugins(ctx)
	if err != nil || len(ps) != 2 || ps[1].Name != "overlap" {
		t.Errorf("ListPlugins = %+v, %v; want match and overlap", ps, err)
	}
	p, err := c.InstallPlugin(ctx, api.InstallPluginRequest{Builtin: "overlap"})
	if err != nil || p.Name != "overlap" || !p.Builtin {
		t.Errorf("InstallPlugin(builtin overlap) = %+v, %v; want the built-in", p, err)
	}
	if _, err := c.InstallPlugin(ctx, api.InstallPluginRequest{Path: "rel/p"}); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("InstallPlugin(relative) error = %v, want ErrInvalid asking for an absolute path", err)
	}

	es, err := c.Audit(ctx, api.AuditFilter{})
	if err != nil || !reflect.DeepEqual(es, f.AuditLog) {
		t.Errorf("Audit() = %+v, %v; want the whole log", es, err)
	}
	es, err = c.Audit(ctx, api.AuditFilter{QueryID: "q1", Limit: 2})
	if err != nil || len(es) != 2 || es[0].Kind != "approval" || es[1].Kind != "run" {
		t.Errorf("Audit(q1, limit 2) = %+v, %v; want q1's approval and run", es, err)
	}
	es, err = c.Audit(ctx, api.AuditFilter{Kind: "denial"})
	if err != nil || len(es) != 1 || es[0].QueryID != "q2" {
		t.Errorf("Audit(kind denial) = %+v, %v; want q2's denial", es, err)
	}
	if _, err := c.Audit(ctx, api.AuditFilter{Limit: -3}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Audit(limit -3) error = %v, want ErrInvalid", err)
	}

	rep, err := c.VerifyAudit(ctx)
	if err != nil || !rep.OK || rep.Entries != 6 {
		t.Errorf("VerifyAudit = %+v, %v; want ok with 6 entries", rep, err)
	}
	f.AuditReport = api.AuditReport{Entries: 6, FirstBadSeq: 3, Problem: "bad signature"}
	rep, err = c.VerifyAudit(ctx)
	if err != nil || rep.OK || rep.FirstBadSeq != 3 {
		t.Errorf("VerifyAudit of a broken chain = %+v, %v; want not ok at entry 3 and no error", rep, err)
	}

	var buf bytes.Buffer
	if err := c.ExportAudit(ctx, &buf); err != nil {
		t.Fatalf("ExportAudit: %v", err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 6 {
		t.Errorf("ExportAudit wrote %d lines, want 6:\n%s", n, buf.String())
	}

	f.Err = fmt.Errorf("store closed: %w", api.ErrUnavailable)
	for name, call := range map[string]func() error{
		"PendingQueries": func() error { _, err := c.PendingQueries(ctx); return err },
		"ListPlugins":    func() error { _, err := c.ListPlugins(ctx); return err },
		"VerifyAudit":    func() error { _, err := c.VerifyAudit(ctx); return err },
		"ExportAudit":    func() error { return c.ExportAudit(ctx, io.Discard) },
	} {
		if err := call(); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "store closed") {
			t.Errorf("%s with the store closed error = %v, want ErrUnavailable saying so", name, err)
		}
	}
}

func TestClientExportMidStreamFailure(t *testing.T) {
	srv := apitest.Serve(t, midStreamFailure{fakeWithDataset()})
	c := api.NewClient(srv.URL, apitest.Token)
	var buf bytes.Buffer
	err := c.ExportAudit(context.Background(), &buf)
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "entry 2") {
		t.Errorf("ExportAudit of an export that fails part way error = %v (wrote %q), want ErrUnavailable naming entry 2", err, buf.String())
	}
}
