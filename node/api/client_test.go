package api_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"xnode/node/api"
	"xnode/node/api/apitest"
	"xnode/node/config"
	"xnode/node/datasets"
)

func TestClientRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := fakeWithDataset()
	f.Finish = func(q *api.Query) {
		q.Status = api.StatusDone
		q.Summary = api.QuerySummary{IntersectionSize: 2, PerPeer: map[string]int{"beta": 2}}
		q.Result = &api.ResultTable{Columns: []string{"id"}, Rows: [][]string{{"a"}, {"b"}}}
	}
	srv := apitest.Serve(t, f)
	c := api.NewClient(srv.URL, apitest.Token)

	info, err := c.NodeInfo(ctx)
	if err != nil || !reflect.DeepEqual(info, f.Info) {
		t.Errorf("NodeInfo = %+v, %v; want %+v", info, err, f.Info)
	}
	peers, err := c.Peers(ctx)
	if err != nil || !reflect.DeepEqual(peers, f.PeerList) {
		t.Errorf("Peers = %+v, %v; want %+v", peers, err, f.PeerList)
	}
	p, err := c.AddPeer(ctx, api.AddPeerRequest{Name: "gamma", Addr: "/ip4/1.2.3.4/tcp/1/p2p/G"})
	if err != nil || p.PeerID != "G" || len(f.PeerList) != 2 {
		t.Errorf("AddPeer = %+v, %v (backend has %d peers); want peer ID G added", p, err, len(f.PeerList))
	}

	var calls []int64
	rep, err := c.ImportDataset(ctx, api.ImportRequest{Name: "people", File: "/data/people.csv", IDColumns: []string{"id"}, IDKind: "cn_id"},
		func(done, total int64) { calls = append(calls, done) })
	if err != nil || rep.Name != "people" || rep.Version != 1 || rep.Imported != 10 {
		t.Errorf("ImportDataset = %+v, %v; want people version 1 with 10 rows", rep, err)
	}
	if len(calls) == 0 || calls[0] != 100 {
		t.Errorf("ImportDataset progress calls = %v, want the first at 100 bytes", calls)
	}
	if got := f.Imports[0]; got.IDKind != "cn_id" || !reflect.DeepEqual(got.IDColumns, []string{"id"}) {
		t.Errorf("backend received import %+v, want id_kind cn_id and id_columns [id]", got)
	}

	ds, err := c.ListDatasets(ctx)
	if err != nil || len(ds) != 2 || ds[0].Name != "loans" || ds[1].Name != "people" {
		t.Errorf("ListDatasets = %+v, %v; want loans and people", ds, err)
	}
	d, err := c.ShowDataset(ctx, "people")
	if err != nil || d.Name != "people" || len(d.Versions) != 1 || d.Source != "people.csv" {
		t.Errorf("ShowDataset = %+v, %v; want people with one version from people.csv", d, err)
	}

	q, err := c.SubmitQuery(ctx, api.QueryRequest{Kind: api.KindMatch, Dataset: "people", Peers: []string{"beta"}})
	if err != nil || q.Status != api.StatusRunning || q.ID == "" {
		t.Fatalf("SubmitQuery = %+v, %v; want a running query", q, err)
	}
	got, err := c.GetQuery(ctx, q.ID)
	if err != nil || got.Status != api.StatusDone || got.Result == nil || len(got.Result.Rows) != 2 {
		t.Errorf("GetQuery = %+v, %v; want done with 2 rows", got, err)
	}
	qs, err := c.ListQueries(ctx)
	if err != nil || len(qs) != 1 || qs[0].ID != q.ID {
		t.Errorf("ListQueries = %+v, %v; want [%s]", qs, err, q.ID)
	}

	dr, err := c.DropDataset(ctx, "people")
	if err != nil || dr.Versions != 1 {
		t.Errorf("DropDataset = %+v, %v; want 1 version dropped", dr, err)
	}
	doc, err := c.OpenAPI(ctx)
	if err != nil || string(doc) != string(api.OpenAPI) {
		t.Errorf("OpenAPI = %d bytes, %v; want the embedded document", len(doc), err)
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	f := fakeWithDataset()
	srv := apitest.Serve(t, f)
	c := api.NewClient(srv.URL, apitest.Token)

	_, err := c.ShowDataset(ctx, "nope")
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.CodeNotFound || !errors.Is(err, api.ErrNotFound) {
		t.Errorf("ShowDataset(nope) error = %#v, want an *api.Error not_found that is ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "xnode dataset list") {
		t.Errorf("ShowDataset(nope) error = %q, want the backend's message saying what to do", err)
	}
	_, err = c.AddPeer(ctx, api.AddPeerRequest{Name: "beta", Addr: "/p2p/x"})
	if !errors.Is(err, api.ErrConflict) {
		t.Errorf("AddPeer(existing) error = %v, want ErrConflict", err)
	}

	f.ImportFunc = func(context.Context, api.ImportRequest, func(int64, int64)) (*datasets.Report, error) {
		return nil, fmt.Errorf("line 4: cn_id checksum is wrong: %w", api.ErrInvalid)
	}
	_, err = c.ImportDataset(ctx, api.ImportRequest{Name: "p", File: "/p.csv", IDColumns: []string{"id"}}, nil)
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("ImportDataset error = %v, want ErrInvalid naming line 4", err)
	}

	bad := api.NewClient(srv.URL, "wrong")
	_, err = bad.NodeInfo(ctx)
	if !errors.As(err, &e) || e.Code != api.CodeUnauthorized {
		t.Errorf("NodeInfo with a wrong token error = %v, want code unauthorized", err)
	}
}

func TestClientForDir(t *testing.T) {
	srv := apitest.Serve(t, fakeWithDataset())
	dir := apitest.DataDir(t, srv)
	c, err := api.ClientForDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.NodeInfo(context.Background())
	if err != nil || info.Name != "alpha" {
		t.Errorf("NodeInfo through ClientForDir = %+v, %v; want alpha", info, err)
	}
	if _, err := api.ClientForDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "xnode init") {
		t.Errorf("ClientForDir(empty dir) error = %v, want one saying to run xnode init", err)
	}
}

func TestClientNotRunning(t *testing.T) {
	// Take a free port and close it, so nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := apitest.Serve(t, fakeWithDataset())
	dir := apitest.DataDir(t, srv)
	srv.Close()

	c, err := api.ClientForDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.NodeInfo(ctx)
	want := fmt.Sprintf("the node at %s is not running (no answer on %s); start it with `xnode run --dir %s`", dir, strings.TrimPrefix(srv.URL, "http://"), dir)
	if !errors.Is(err, api.ErrNotRunning) || err.Error() != want {
		t.Errorf("NodeInfo of a stopped node error = %v,\nwant %q wrapping ErrNotRunning", err, want)
	}

	_, err = api.NewClient(addr, "t").Peers(ctx)
	if !errors.Is(err, api.ErrNotRunning) || !strings.Contains(err.Error(), addr) {
		t.Errorf("Peers with nothing on %s error = %v, want ErrNotRunning naming the address", addr, err)
	}
}

func TestClientForDirWrongToken(t *testing.T) {
	srv := apitest.Serve(t, fakeWithDataset())
	dir := apitest.DataDir(t, srv)
	if err := os.WriteFile(filepath.Join(dir, config.TokenFile), []byte("stale\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := api.ClientForDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.NodeInfo(context.Background())
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.CodeUnauthorized || !strings.Contains(err.Error(), filepath.Join(dir, "api.token")) {
		t.Errorf("NodeInfo with a stale api.token error = %v, want unauthorized naming %s", err, filepath.Join(dir, "api.token"))
	}
}
