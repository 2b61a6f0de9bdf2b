package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"xnode/node/api"
	"xnode/node/api/apitest"
	"xnode/node/datasets"
)

// call sends a request with token (none if empty) and returns the status
// and body.
func call(t *testing.T, base, token, method, path, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func fakeWithDataset() *apitest.Fake {
	f := apitest.NewFake()
	f.Datasets["loans"] = []datasets.Info{{Name: "loans", Version: 1, Rows: 5, IDKind: "cn_id"}}
	return f
}

func TestServerAuth(t *testing.T) {
	srv := apitest.Serve(t, fakeWithDataset())
	tests := []struct {
		name, token, method, path string
		want                      int
	}{
		{"no token", "", "GET", "/v1/node", http.StatusUnauthorized},
		{"wrong token", "nope", "GET", "/v1/node", http.StatusUnauthorized},
		{"token prefix", apitest.Token[:5], "GET", "/v1/datasets", http.StatusUnauthorized},
		{"no token on a POST", "", "POST", "/v1/queries", http.StatusUnauthorized},
		{"no token on openapi", "", "GET", "/v1/openapi.yaml", http.StatusUnauthorized},
		{"right token", apitest.Token, "GET", "/v1/node", http.StatusOK},
		{"metrics need none", "", "GET", "/metrics", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, srv.URL, tt.token, tt.method, tt.path, "")
			if status != tt.want {
				t.Fatalf("%s %s with token %q = %d %s, want %d", tt.method, tt.path, tt.token, status, body, tt.want)
			}
			if status == http.StatusUnauthorized {
				var e api.Error
				if err := json.Unmarshal(body, &e); err != nil || e.Code != api.CodeUnauthorized {
					t.Errorf("401 body = %s, want a JSON Error with code %q", body, api.CodeUnauthorized)
				}
			}
		})
	}
}

func TestServerRoutes(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		fake                     func(*apitest.Fake)
		want                     int
		wantCode                 string // api.Error code for non-2xx
		check                    func(t *testing.T, body []byte)
	}{
		{name: "node", method: "GET", path: "/v1/node", want: 200, check: func(t *testing.T, b []byte) {
			var v api.NodeInfo
			mustJSON(t, b, &v)
			if v.Name != "alpha" || v.PeerID != "12D3KooWAlpha" {
				t.Errorf("node = %+v, want alpha with its peer ID", v)
			}
		}},
		{name: "node backend down", method: "GET", path: "/v1/node", fake: func(f *apitest.Fake) {
			f.Err = fmt.Errorf("host is starting: %w", api.ErrUnavailable)
		}, want: 503, wantCode: api.CodeUnavailable},
		{name: "node internal error hidden", method: "GET", path: "/v1/node", fake: func(f *apitest.Fake) {
			f.Err = errors.New("secret detail /var/lib/x")
		}, want: 500, wantCode: api.CodeInternal, check: func(t *testing.T, b []byte) {
			if strings.Contains(string(b), "secret detail") {
				t.Errorf("500 body %s leaks the internal error", b)
			}
		}},
		{name: "peers", method: "GET", path: "/v1/peers", want: 200, check: func(t *testing.T, b []byte) {
			var v []api.PeerInfo
			mustJSON(t, b, &v)
			if len(v) != 1 || v[0].Name != "beta" {
				t.Errorf("peers = %+v, want [beta]", v)
			}
		}},
		{name: "peers empty is []", method: "GET", path: "/v1/peers", fake: func(f *apitest.Fake) { f.PeerList = nil }, want: 200,
			check: func(t *testing.T, b []byte) {
				if strings.TrimSpace(string(b)) != "[]" {
					t.Errorf("empty peers body = %s, want []", b)
				}
			}},
		{name: "add peer", method: "POST", path: "/v1/peers", body: `{"name":"gamma","addr":"/ip4/1.2.3.4/tcp/1/p2p/12D3KooWGamma"}`, want: 201,
			check: func(t *testing.T, b []byte) {
				var v api.PeerInfo
				mustJSON(t, b, &v)
				if v.PeerID != "12D3KooWGamma" {
					t.Errorf("added peer = %+v, want peer ID 12D3KooWGamma", v)
				}
			}},
		{name: "add peer twice", method: "POST", path: "/v1/peers", body: `{"name":"beta","addr":"/ip4/1.2.3.4/tcp/1/p2p/X"}`, want: 409, wantCode: api.CodeConflict},
		{name: "add peer without addr", method: "POST", path: "/v1/peers", body: `{"name":"gamma"}`, want: 400, wantCode: api.CodeInvalid},
		{name: "add peer bad JSON", method: "POST", path: "/v1/peers", body: `{"name":`, want: 400, wantCode: api.CodeInvalid},
		{name: "add peer unknown field", method: "POST", path: "/v1/peers", body: `{"name":"g","adr":"x"}`, want: 400, wantCode: api.CodeInvalid},
		{name: "datasets", method: "GET", path: "/v1/datasets", want: 200, check: func(t *testing.T, b []byte) {
			var v []datasets.Info
			mustJSON(t, b, &v)
			if len(v) != 1 || v[0].Name != "loans" {
				t.Errorf("datasets = %+v, want [loans]", v)
			}
		}},
		{name: "show dataset", method: "GET", path: "/v1/datasets/loans", want: 200, check: func(t *testing.T, b []byte) {
			var v api.DatasetDetail
			mustJSON(t, b, &v)
			if v.Name != "loans" || len(v.Versions) != 1 {
				t.Errorf("dataset = %+v, want loans with 1 version", v)
			}
		}},
		{name: "show missing dataset", method: "GET", path: "/v1/datasets/nope", want: 404, wantCode: api.CodeNotFound},
		{name: "show bad dataset name", method: "GET", path: "/v1/datasets/..bad", want: 400, wantCode: api.CodeInvalid},
		{name: "show store-not-found maps to 404", method: "GET", path: "/v1/datasets/loans", fake: func(f *apitest.Fake) {
			f.Err = fmt.Errorf("dataset %q: %w", "loans", datasets.ErrNotFound)
		}, want: 404, wantCode: api.CodeNotFound},
		{name: "drop dataset", method: "DELETE", path: "/v1/datasets/loans", want: 200, check: func(t *testing.T, b []byte) {
			var v api.DropResult
			mustJSON(t, b, &v)
			if v.Name != "loans" || v.Versions != 1 {
				t.Errorf("drop = %+v, want loans with 1 version", v)
			}
		}},
		{name: "drop missing dataset", method: "DELETE", path: "/v1/datasets/nope", want: 404, wantCode: api.CodeNotFound},
		{name: "submit query", method: "POST", path: "/v1/queries", body: `{"kind":"overlap","dataset":"loans","peers":["beta"]}`, want: 202,
			check: func(t *testing.T, b []byte) {
				var v api.Query
				mustJSON(t, b, &v)
				if v.ID == "" || v.Status != api.StatusRunning {
					t.Errorf("submitted query = %+v, want an id and status running", v)
				}
			}},
		{name: "submit query without peers", method: "POST", path: "/v1/queries", body: `{"kind":"overlap","dataset":"loans"}`, want: 400, wantCode: api.CodeInvalid},
		{name: "submit query on missing dataset", method: "POST", path: "/v1/queries", body: `{"kind":"overlap","dataset":"x","peers":["beta"]}`, want: 400, wantCode: api.CodeInvalid},
		{name: "queries", method: "GET", path: "/v1/queries", want: 200, check: func(t *testing.T, b []byte) {
			if strings.TrimSpace(string(b)) != "[]" {
				t.Errorf("no queries body = %s, want []", b)
			}
		}},
		{name: "query", method: "GET", path: "/v1/queries/q7", fake: func(f *apitest.Fake) {
			f.Queries["q7"] = api.Query{ID: "q7", Status: api.StatusDone, Summary: api.QuerySummary{IntersectionSize: 4}}
		}, want: 200, check: func(t *testing.T, b []byte) {
			var v api.Query
			mustJSON(t, b, &v)
			if v.ID != "q7" || v.Summary.IntersectionSize != 4 {
				t.Errorf("query = %+v, want q7 with intersection 4", v)
			}
		}},
		{name: "missing query", method: "GET", path: "/v1/queries/q9", want: 404, wantCode: api.CodeNotFound},
		{name: "openapi", method: "GET", path: "/v1/openapi.yaml", want: 200, check: func(t *testing.T, b []byte) {
			if !strings.HasPrefix(string(b), "openapi: 3.0") {
				t.Errorf("openapi body starts %.40q, want an OpenAPI 3.0 document", b)
			}
		}},
		{name: "unknown route", method: "GET", path: "/v1/nope", want: 404, wantCode: api.CodeNotFound},
		{name: "wrong method", method: "PUT", path: "/v1/node", want: 405, wantCode: api.CodeMethod},
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
				tt.check(t, body)
			}
		})
	}
}

func TestServerBodyCap(t *testing.T) {
	f := fakeWithDataset()
	srv := apitest.Serve(t, f)
	big := `{"name":"gamma","addr":"` + strings.Repeat("a", api.MaxBodyBytes) + `"}`
	status, body := call(t, srv.URL, apitest.Token, "POST", "/v1/peers", big)
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST /v1/peers with a %d-byte body = %d %s, want 413", len(big), status, body)
	}
	if len(f.PeerList) != 1 {
		t.Errorf("after an oversized request the backend has %d peers, want it untouched (1)", len(f.PeerList))
	}
}

func TestServerImportStream(t *testing.T) {
	f := fakeWithDataset()
	f.ImportFunc = func(ctx context.Context, req api.ImportRequest, progress func(done, total int64)) (*datasets.Report, error) {
		for i := int64(1); i <= 4; i++ {
			progress(i*10, 40)
			time.Sleep(15 * time.Millisecond)
		}
		return &datasets.Report{Name: req.Name, RowsRead: 3, Imported: 2, Invalid: 1, Errors: []datasets.RowError{{Line: 3, Reason: "bad id"}}}, nil
	}
	srv := apitest.Serve(t, f, api.WithProgressInterval(10*time.Millisecond))
	req, _ := http.NewRequest("POST", srv.URL+"/v1/datasets", strings.NewReader(`{"name":"people","file":"/tmp/people.csv","id_columns":["id"]}`))
	req.Header.Set("Authorization", "Bearer "+apitest.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ndjson" {
		t.Fatalf("import answered %d %q, want 200 application/x-ndjson", resp.StatusCode, ct)
	}
	var events []api.ImportEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ev api.ImportEvent
		mustJSON(t, sc.Bytes(), &ev)
		events = append(events, ev)
	}
	if len(events) < 2 {
		t.Fatalf("import stream has %d lines, want progress lines and a final report", len(events))
	}
	for i, ev := range events[:len(events)-1] {
		if ev.Report != nil || ev.Error != nil || ev.BytesTotal != 40 {
			t.Errorf("line %d = %+v, want a progress line of 40 bytes", i, ev)
		}
	}
	last := events[len(events)-1]
	if last.Report == nil || last.Report.Imported != 2 || last.Report.Errors[0].Line != 3 {
		t.Errorf("final line = %+v, want the report with 2 imported and line 3 invalid", last)
	}
	if len(f.Imports) != 1 || f.Imports[0].File != "/tmp/people.csv" {
		t.Errorf("backend got imports %+v, want one of /tmp/people.csv", f.Imports)
	}
}

func TestServerImportThrottlesProgress(t *testing.T) {
	f := fakeWithDataset()
	f.ImportFunc = func(ctx context.Context, req api.ImportRequest, progress func(done, total int64)) (*datasets.Report, error) {
		for i := int64(1); i <= 1000; i++ {
			progress(i, 1000)
		}
		return &datasets.Report{Name: req.Name}, nil
	}
	srv := apitest.Serve(t, f) // default 200 ms
	status, body := call(t, srv.URL, apitest.Token, "POST", "/v1/datasets", `{"name":"p","file":"/tmp/p.csv","id_columns":["id"]}`)
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if status != 200 || len(lines) > 2 {
		t.Errorf("1000 fast progress calls gave %d %d lines, want 200 with at most one progress line and the report", status, len(lines))
	}
}

func TestServerImportErrors(t *testing.T) {
	tests := []struct {
		name, body string
		err        error
		wantStatus int
		wantCode   string
	}{
		{"relative file", `{"name":"p","file":"p.csv","id_columns":["id"]}`, nil, 400, api.CodeInvalid},
		{"no id columns", `{"name":"p","file":"/tmp/p.csv"}`, nil, 400, api.CodeInvalid},
		{"strict refusal in stream", `{"name":"p","file":"/tmp/p.csv","id_columns":["id"],"strict":true}`,
			fmt.Errorf("line 4: bad cn_id: %w", api.ErrInvalid), 200, api.CodeInvalid},
		{"internal failure in stream", `{"name":"p","file":"/tmp/p.csv","id_columns":["id"]}`,
			errors.New("disk on fire"), 200, api.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fakeWithDataset()
			f.ImportFunc = func(context.Context, api.ImportRequest, func(int64, int64)) (*datasets.Report, error) {
				return nil, tt.err
			}
			srv := apitest.Serve(t, f)
			status, body := call(t, srv.URL, apitest.Token, "POST", "/v1/datasets", tt.body)
			if status != tt.wantStatus {
				t.Fatalf("import = %d %s, want %d", status, body, tt.wantStatus)
			}
			var code string
			if status == 200 {
				var ev api.ImportEvent
				mustJSON(t, []byte(strings.TrimSpace(string(body))), &ev)
				if ev.Error != nil {
					code = ev.Error.Code
				}
			} else {
				var e api.Error
				mustJSON(t, body, &e)
				code = e.Code
			}
			if code != tt.wantCode {
				t.Errorf("import error code = %q (body %s), want %q", code, body, tt.wantCode)
			}
		})
	}
}

func TestServerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	nodeGauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "xnode_test_node_gauge", Help: "A metric of the node."})
	reg.MustRegister(nodeGauge)
	srv := apitest.Serve(t, fakeWithDataset(), api.WithRegistry(reg))
	call(t, srv.URL, apitest.Token, "GET", "/v1/datasets/loans", "")
	call(t, srv.URL, apitest.Token, "GET", "/v1/datasets/nope", "")
	_, body := call(t, srv.URL, "", "GET", "/metrics", "")
	for _, want := range []string{
		`xnode_api_requests_total{code="200",route="GET /v1/datasets/{name}"} 1`,
		`xnode_api_requests_total{code="404",route="GET /v1/datasets/{name}"} 1`,
		`xnode_api_request_duration_seconds_count{code="200",route="GET /v1/datasets/{name}"} 1`,
		"xnode_test_node_gauge 0",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q; got:\n%s", want, body)
		}
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("body %s is not the JSON wanted: %v", b, err)
	}
}

func TestServerErrorMessages(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: the peer needs a name", api.ErrInvalid), "the peer needs a name"},
		{fmt.Errorf("dataset %q not found; `xnode dataset list` shows the datasets: %w", "x", datasets.ErrNotFound), "dataset \"x\" not found; `xnode dataset list` shows the datasets"},
		{fmt.Errorf("peer %q is taken: %w", "b", api.ErrConflict), `peer "b" is taken`},
		{api.ErrUnavailable, "temporarily unavailable"},
	}
	for _, tt := range tests {
		f := apitest.NewFake()
		f.Err = tt.err
		srv := apitest.Serve(t, f)
		_, body := call(t, srv.URL, apitest.Token, "GET", "/v1/node", "")
		var e api.Error
		mustJSON(t, body, &e)
		if e.Message != tt.want {
			t.Errorf("backend error %q answered with message %q, want %q", tt.err, e.Message, tt.want)
		}
	}
}
