package plugins_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"xnode/plugins"
	"xnode/plugins/plugintest"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// builtins builds plugins/overlap and plugins/match once per test binary.
func builtins(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "xnode-plugins-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+string(filepath.Separator), "xnode/plugins/overlap", "xnode/plugins/match")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("go build the built-in plugins: %v", buildErr)
	}
	return buildDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func launch(t *testing.T, path string) *plugins.Client {
	t.Helper()
	sum, err := plugins.Digest(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := plugins.Launch(ctx, path, sum, nil)
	if err != nil {
		t.Fatalf("Launch(%s) error = %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestBuiltinBinariesConform(t *testing.T) {
	dir := builtins(t)
	t.Run("overlap", func(t *testing.T) {
		c := launch(t, filepath.Join(dir, "overlap"))
		if d := c.Descriptor(); d.Name != "overlap" || d.Protocol != plugins.Cardinality {
			t.Errorf("Descriptor() = %s/%s, want overlap/psi.cardinality", d.Name, d.Protocol)
		}
		plugintest.Run(t, c, plugintest.Options{Params: map[string]string{"filter": "segment:v1", "peer_filter": "region:v2"}})
	})
	t.Run("match", func(t *testing.T) {
		c := launch(t, filepath.Join(dir, "match"))
		plugintest.Run(t, c, plugintest.Options{
			Params:  map[string]string{"columns": "segment,balance"},
			Columns: map[string]plugins.Column{"balance": {Type: plugins.ColumnDecimal, Scale: 2}},
		})
	})
}

func TestLaunchRefusesAnotherDigest(t *testing.T) {
	dir := builtins(t)
	overlapSum, err := plugins.Digest(filepath.Join(dir, "overlap"))
	if err != nil {
		t.Fatal(err)
	}
	// A swapped binary: the path pinned for overlap now holds match.
	swapped := filepath.Join(t.TempDir(), "overlap")
	b, err := os.ReadFile(filepath.Join(dir, "match"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(swapped, b, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := plugins.Launch(context.Background(), swapped, overlapSum, nil)
	if !errors.Is(err, plugins.ErrDigestMismatch) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Launch(swapped binary) error = %v, want ErrDigestMismatch", err)
	}
	if !strings.Contains(err.Error(), "reinstall") {
		t.Errorf("Launch(swapped binary) error = %q, want it to say what to do", err)
	}
	if _, err := plugins.Launch(context.Background(), swapped, overlapSum[:8], nil); err == nil || errors.Is(err, plugins.ErrDigestMismatch) {
		t.Errorf("Launch(short digest) error = %v, want a complaint about the digest's length", err)
	}
}

func TestLaunchHostChecksParams(t *testing.T) {
	c := launch(t, filepath.Join(builtins(t), "match"))
	_, err := c.Plan(context.Background(), map[string]string{"colums": "a"})
	if !errors.Is(err, plugins.ErrInvalidParams) || !strings.Contains(err.Error(), "accepted parameters: columns") {
		t.Errorf("Plan(colums=a) error = %v, want ErrInvalidParams listing columns", err)
	}
}

func TestLaunchHonoursContext(t *testing.T) {
	path := filepath.Join(builtins(t), "overlap")
	sum, err := plugins.Digest(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c, err := plugins.Launch(ctx, path, sum, nil); !errors.Is(err, context.Canceled) {
		if c != nil {
			c.Close()
		}
		t.Errorf("Launch(cancelled ctx) error = %v, want context.Canceled", err)
	}
}

func TestBinaryRunByHandExplains(t *testing.T) {
	out, err := exec.Command(filepath.Join(builtins(t), "overlap")).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "xnode plugin install") {
		t.Errorf("running overlap by hand: %v, output %q; want exit 1 and a pointer to xnode plugin install", err, out)
	}
}
