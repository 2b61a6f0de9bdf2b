package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xnode/node/api"
	"xnode/node/api/apitest"
	"xnode/node/datasets"
)

// fakeNode serves a fake backend and returns it with a data dir that points at
// it.
func fakeNode(t *testing.T) (*apitest.Fake, string) {
	t.Helper()
	f := apitest.NewFake()
	f.Datasets["loans"] = []datasets.Info{
		{Name: "loans", Version: 1, Rows: 4, IDKind: "cn_id", IDColumns: []string{"id"}, Source: "loans-v1.csv"},
		{Name: "loans", Version: 2, Rows: 5, IDKind: "cn_id", IDColumns: []string{"id"}, Source: "loans.csv",
			Columns: []datasets.Column{{Name: "amount", Type: datasets.TypeDecimal, Scale: 2}}},
	}
	srv := apitest.Serve(t, f)
	return f, apitest.DataDir(t, srv)
}

// xnode runs the command line and returns its exit code, stdout and stderr.
func xnode(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// lastJSONLine decodes the last line of out into v.
func lastJSONLine(t *testing.T, out string, v any) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		t.Fatalf("last line of stdout is not the JSON wanted: %v\nstdout:\n%s", err, out)
	}
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q; got:\n%s", what, w, got)
		}
	}
}

func TestID(t *testing.T) {
	_, dir := fakeNode(t)
	code, out, errOut := xnode(t, "id", "--dir", dir)
	if code != 0 {
		t.Fatalf("xnode id exited %d: %s", code, errOut)
	}
	wantContains(t, "xnode id output", out, "alpha", "/ip4/127.0.0.1/tcp/7400/p2p/12D3KooWAlpha", "pilot")

	code, out, _ = xnode(t, "id", "--dir", dir, "--json")
	var info api.NodeInfo
	lastJSONLine(t, out, &info)
	if code != 0 || info.PeerID != "12D3KooWAlpha" || info.Consortium != "pilot" {
		t.Errorf("xnode id --json = %d %+v, want 0 and alpha's peer ID and consortium", code, info)
	}
}

func TestDirFromEnvironment(t *testing.T) {
	_, dir := fakeNode(t)
	t.Setenv("XNODE_DIR", dir)
	code, out, errOut := xnode(t, "id", "--json")
	var info api.NodeInfo
	if code != 0 {
		t.Fatalf("xnode id with XNODE_DIR set exited %d: %s", code, errOut)
	}
	lastJSONLine(t, out, &info)
	if info.Name != "alpha" {
		t.Errorf("xnode id with XNODE_DIR = %+v, want the node alpha", info)
	}
}

func TestNodeNotRunning(t *testing.T) {
	f := apitest.NewFake()
	srv := apitest.Serve(t, f)
	dir := apitest.DataDir(t, srv)
	srv.Close()
	code, _, errOut := xnode(t, "dataset", "list", "--dir", dir)
	if code != exitFailure {
		t.Errorf("dataset list with no node running exited %d, want %d", code, exitFailure)
	}
	wantContains(t, "stderr", errOut, "the node at "+dir+" is not running", "xnode run --dir "+dir)
}

func TestNoDataDir(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := xnode(t, "peers", "list", "--dir", dir)
	if code != exitFailure {
		t.Errorf("peers list in an empty dir exited %d, want %d", code, exitFailure)
	}
	wantContains(t, "stderr", errOut, "xnode init --dir "+dir)
}

func TestPeers(t *testing.T) {
	f, dir := fakeNode(t)
	code, out, errOut := xnode(t, "peers", "list", "--dir", dir)
	if code != 0 {
		t.Fatalf("peers list exited %d: %s", code, errOut)
	}
	wantContains(t, "peers list", out, "NAME", "beta", "12D3KooWBeta", "Beta Bank")

	code, out, errOut = xnode(t, "peers", "add", "gamma", "/ip4/10.0.0.3/tcp/7400/p2p/12D3KooWGamma", "--dir", dir)
	if code != 0 {
		t.Fatalf("peers add exited %d: %s", code, errOut)
	}
	wantContains(t, "peers add", out, "added peer gamma (12D3KooWGamma)")
	if len(f.PeerList) != 2 || f.PeerList[1].Addr != "/ip4/10.0.0.3/tcp/7400/p2p/12D3KooWGamma" {
		t.Errorf("after peers add the node has peers %+v, want gamma with its address", f.PeerList)
	}

	code, out, _ = xnode(t, "peers", "list", "--dir", dir, "--json")
	var peers []api.PeerInfo
	lastJSONLine(t, out, &peers)
	if code != 0 || len(peers) != 2 {
		t.Errorf("peers list --json = %d %+v, want 2 peers", code, peers)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"not a multiaddr", []string{"delta", "10.0.0.4:7400"}, exitUsage, "not a multiaddr"},
		{"one argument", []string{"delta"}, exitUsage, "accepts 2 arg"},
		{"name taken", []string{"beta", "/ip4/10.0.0.5/tcp/7400/p2p/X"}, exitFailure, "already configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := xnode(t, append([]string{"peers", "add", "--dir", dir}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("peers add %v exited %d, want %d (stderr %s)", tt.args, code, tt.wantCode, errOut)
			}
			wantContains(t, "stderr", errOut, tt.wantErr)
		})
	}
}

func TestDatasetListShowDrop(t *testing.T) {
	f, dir := fakeNode(t)
	code, out, errOut := xnode(t, "dataset", "list", "--dir", dir)
	if code != 0 {
		t.Fatalf("dataset list exited %d: %s", code, errOut)
	}
	wantContains(t, "dataset list", out, "NAME", "loans", "cn_id", "amount", "loans.csv")

	code, out, _ = xnode(t, "dataset", "show", "loans", "--dir", dir)
	if code != 0 {
		t.Fatalf("dataset show exited %d", code)
	}
	wantContains(t, "dataset show", out, "amount:decimal(2)", "versions:", "loans-v1.csv")

	code, out, _ = xnode(t, "dataset", "show", "loans", "--dir", dir, "--json")
	var d api.DatasetDetail
	lastJSONLine(t, out, &d)
	if code != 0 || d.Version != 2 || len(d.Versions) != 2 {
		t.Errorf("dataset show --json = %d %+v, want version 2 with 2 versions", code, d)
	}

	code, _, errOut = xnode(t, "dataset", "show", "nope", "--dir", dir)
	if code != exitFailure {
		t.Errorf("dataset show nope exited %d, want %d", code, exitFailure)
	}
	wantContains(t, "stderr of show nope", errOut, `dataset "nope" not found`, "xnode dataset list")

	code, out, _ = xnode(t, "dataset", "drop", "loans", "--dir", dir)
	if code != 0 {
		t.Fatalf("dataset drop exited %d", code)
	}
	wantContains(t, "dataset drop", out, `dropped dataset "loans" (2 versions)`)
	if _, ok := f.Datasets["loans"]; ok {
		t.Error("after dataset drop the node still has loans")
	}
	code, out, _ = xnode(t, "dataset", "list", "--dir", dir, "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("dataset list --json with no datasets = %d %q, want 0 and []", code, out)
	}
}

func TestDatasetImport(t *testing.T) {
	f, dir := fakeNode(t)
	f.ImportFunc = func(_ context.Context, req api.ImportRequest, progress func(int64, int64)) (*datasets.Report, error) {
		progress(10, 20)
		errs := make([]datasets.RowError, 12)
		for i := range errs {
			errs[i] = datasets.RowError{Line: int64(i + 2), Reason: "cn_id checksum is wrong"}
		}
		return &datasets.Report{Name: req.Name, Source: filepath.Base(req.File), RowsRead: 40, Imported: 20, Duplicates: 5, Invalid: 15, Errors: errs,
			Columns: []datasets.Column{{Name: "amount", Type: datasets.TypeDecimal, Scale: 2}}}, nil
	}
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "people.csv"), []byte("id,amount\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)
	code, out, errOut := xnode(t, "dataset", "import", "--dir", dir, "--name", "people", "--file", "people.csv",
		"--id-column", "name,birth", "--id-kind", "raw", "--value-columns", "amount:decimal(2)", "--label-columns", "flag",
		"--encoding", "gbk", "--format", "csv", "--strict")
	if code != 0 {
		t.Fatalf("dataset import exited %d: %s", code, errOut)
	}
	want := api.ImportRequest{Name: "people", File: filepath.Join(work, "people.csv"), Format: "csv", IDColumns: []string{"name", "birth"},
		IDKind: "raw", ValueColumns: []string{"amount:decimal(2)"}, LabelColumns: []string{"flag"}, Encoding: "gbk", Strict: true}
	if got := f.Imports[0]; !reflectEqualJSON(got, want) {
		t.Errorf("the node received import\n%+v\nwant\n%+v", got, want)
	}
	wantContains(t, "import output", out, `dataset "people" version 1`, "rows read", "40", "imported", "20", "duplicates", "5",
		"invalid", "15", "line 2: cn_id checksum is wrong", "line 11:", "and 5 more")
	if strings.Contains(out, "line 12:") {
		t.Errorf("import output lists line 12, want only the first %d bad rows:\n%s", shownRowErrors, out)
	}

	code, out, _ = xnode(t, "dataset", "import", "--dir", dir, "--name", "people", "--file", "people.csv", "--id-column", "id", "--json")
	var rep datasets.Report
	lastJSONLine(t, out, &rep)
	if code != 0 || rep.Version != 2 || len(rep.Errors) != 12 {
		t.Errorf("dataset import --json = %d %+v, want version 2 with 12 row errors", code, rep)
	}
}

func TestDatasetImportFails(t *testing.T) {
	f, dir := fakeNode(t)
	f.ImportFunc = func(context.Context, api.ImportRequest, func(int64, int64)) (*datasets.Report, error) {
		return nil, fmt.Errorf("line 7: cn_id checksum is wrong; fix the row or import without --strict: %w", api.ErrInvalid)
	}
	file := filepath.Join(t.TempDir(), "p.csv")
	if err := os.WriteFile(file, []byte("id\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"dataset", "import", "--dir", dir}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"refused by the node", []string{"--name", "p", "--file", file, "--id-column", "id", "--strict"}, exitFailure, "line 7: cn_id checksum is wrong"},
		{"no id column", []string{"--name", "p", "--file", file}, exitUsage, "--id-column"},
		{"no name", []string{"--file", file, "--id-column", "id"}, exitUsage, "--name"},
		{"bad id kind", []string{"--name", "p", "--file", file, "--id-column", "id", "--id-kind", "passport"}, exitUsage, "--id-kind"},
		{"bad encoding", []string{"--name", "p", "--file", file, "--id-column", "id", "--encoding", "latin1"}, exitUsage, "--encoding"},
		{"missing file", []string{"--name", "p", "--file", file + ".nope", "--id-column", "id"}, exitFailure, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := xnode(t, append(base, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("dataset import %v exited %d, want %d (stderr %s)", tt.args, code, tt.wantCode, errOut)
			}
			wantContains(t, "stderr", errOut, tt.wantErr)
		})
	}
}

// reflectEqualJSON compares two values by their JSON encodings.
func reflectEqualJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
