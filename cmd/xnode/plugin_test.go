package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xnode/node/api"
	"xnode/node/registry"
	"xnode/plugins"
	"xnode/plugins/plugintest"
)

func TestPluginInstall(t *testing.T) {
	f, dir := fakeNode(t)
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(work, "bin", "sums")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)

	code, out, errOut := xnode(t, "plugin", "install", "bin/sums", "--dir", dir)
	if code != 0 {
		t.Fatalf("plugin install exited %d: %s", code, errOut)
	}
	if len(f.Installs) != 1 || f.Installs[0].Path != exe {
		t.Errorf("the node received installs %+v, want the absolute path %s", f.Installs, exe)
	}
	wantContains(t, "plugin install", out, "installed plugin sums 0.1.0 (psi.cardinality) from "+exe, "digest sha256:")

	code, out, errOut = xnode(t, "plugin", "install", "--builtin", "match", "--dir", dir, "--json")
	var p api.PluginInfo
	lastJSONLine(t, out, &p)
	if code != 0 || p.Name != "match" || !p.Builtin || f.Installs[1].Builtin != "match" || f.Installs[1].Path != "" {
		t.Errorf("plugin install --builtin match --json = %d %+v (node got %+v, stderr %s), want the built-in match", code, p, f.Installs[1], errOut)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"neither", nil, exitUsage, "name the plugin executable PATH, or a built-in with --builtin NAME"},
		{"both", []string{"bin/sums", "--builtin", "overlap"}, exitUsage, "either PATH or --builtin NAME, not both"},
		{"unknown builtin", []string{"--builtin", "nope"}, exitUsage, "the built-ins are overlap, match, risk-check, segment-stats"},
		{"missing file", []string{"bin/none"}, exitFailure, "failed to install plugin " + filepath.Join(work, "bin", "none")},
		{"two paths", []string{"a", "b"}, exitUsage, "accepts at most 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(f.Installs)
			code, _, errOut := xnode(t, append([]string{"plugin", "install", "--dir", dir}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("plugin install %v exited %d, want %d (stderr %s)", tt.args, code, tt.wantCode, errOut)
			}
			wantContains(t, "stderr", errOut, tt.wantErr)
			if tt.wantCode == exitUsage && len(f.Installs) != n {
				t.Errorf("plugin install %v is a usage error but reached the node", tt.args)
			}
		})
	}
}

func TestPluginList(t *testing.T) {
	f, dir := fakeNode(t)
	f.Plugins = append(f.Plugins, api.PluginInfo{Name: "sums", Version: "0.2.0", Protocol: "secagg.sum",
		Digest: "sha256:" + strings.Repeat("cd", 32), Path: "/opt/plugins/sums", Params: "columns (string, required)\ngroup (string, optional)"})
	code, out, errOut := xnode(t, "plugin", "list", "--dir", dir)
	if code != 0 {
		t.Fatalf("plugin list exited %d: %s", code, errOut)
	}
	wantContains(t, "plugin list", out, "NAME", "VERSION", "PROTOCOL", "DIGEST", "SOURCE",
		"match", "overlap", "psi.intersection", "built-in (/usr/local/bin/xnode)", "sums", "0.2.0", "secagg.sum",
		"sha256:"+strings.Repeat("cd", 32), "/opt/plugins/sums", "sums:\n  columns (string, required)\n  group (string, optional)")

	code, out, _ = xnode(t, "plugin", "list", "--dir", dir, "--json")
	var ps []api.PluginInfo
	lastJSONLine(t, out, &ps)
	if code != 0 || len(ps) != 3 || ps[2].Name != "sums" || ps[2].Path != "/opt/plugins/sums" {
		t.Errorf("plugin list --json = %d %+v, want match, overlap and sums", code, ps)
	}

	f.Plugins = nil
	code, out, _ = xnode(t, "plugin", "list", "--dir", dir)
	if code != 0 || !strings.Contains(out, "xnode plugin install --builtin overlap") {
		t.Errorf("plugin list with none = %d %q, want 0 saying how to install the built-ins", code, out)
	}
}

func TestPluginServeBuiltins(t *testing.T) {
	for _, name := range registry.Builtins {
		p, err := builtinPlugin(name)
		if err != nil {
			t.Errorf("builtinPlugin(%q): %v; every name in registry.Builtins must be compiled into xnode", name, err)
			continue
		}
		d, err := p.Describe(context.Background())
		if err != nil || d.Name != name {
			t.Errorf("built-in %q describes itself as %q (%v), want its own name", name, d.Name, err)
		}
	}
	code, _, errOut := xnode(t, "plugin", "serve", "nope")
	if code != exitUsage || !strings.Contains(errOut, `no built-in plugin "nope"`) {
		t.Errorf("plugin serve nope = %d %q, want %d naming the built-ins", code, errOut, exitUsage)
	}
	_, out, _ := xnode(t, "plugin", "--help")
	if !strings.Contains(out, "\n  install ") || strings.Contains(out, "\n  serve ") {
		t.Errorf("plugin --help lists the hidden serve command, or not install:\n%s", out)
	}
}

// TestPluginServeRealBinary launches `xnode plugin serve NAME` as the node
// does, through go-plugin with the binary's digest pinned, and runs the
// conformance suite against each built-in across the process boundary.
func TestPluginServeRealBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the xnode binary; skipped with -short")
	}
	bin := buildXnode(t)
	sum, err := plugins.Digest(bin)
	if err != nil {
		t.Fatal(err)
	}
	// Options for built-ins that need parameters or protocol output of a
	// particular shape; the others run with none.
	options := map[string]plugintest.Options{
		"risk-check": {Label: `{"risk_level":"high","listed_date":"2024-03-01"}`},
		"segment-stats": {
			Params: map[string]string{"group": "region", "sum": "amount", "over": "overdue_days:90", "categories": "v0,v1"},
			Columns: map[string]plugins.Column{
				"amount":       {Type: plugins.ColumnDecimal, Scale: 2},
				"overdue_days": {Type: plugins.ColumnInteger},
			},
			Aggregate: []int64{10, 1000, 2, 3, 5, 0, 20, -40, 20},
		},
	}
	for _, name := range registry.Builtins {
		t.Run(name, func(t *testing.T) {
			c, err := plugins.LaunchCommand(context.Background(), bin, registry.ServeArgs(name), sum, nil)
			if err != nil {
				t.Fatalf("launch %s %v: %v", bin, registry.ServeArgs(name), err)
			}
			t.Cleanup(func() { _ = c.Close() })
			if got := c.Descriptor().Name; got != name {
				t.Fatalf("xnode plugin serve %s describes itself as %q", name, got)
			}
			opts := options[name]
			opts.Rows = 20_000
			plugintest.Run(t, c, opts)
		})
	}

	// Started by hand, the command explains itself and fails.
	_, errOut, code := runXnode(t, bin, "plugin", "serve", "overlap")
	if code == 0 || !strings.Contains(errOut, "xnode plugin install") {
		t.Errorf("xnode plugin serve overlap run by hand = %d %q, want a failure saying how plugins are installed", code, errOut)
	}
}
