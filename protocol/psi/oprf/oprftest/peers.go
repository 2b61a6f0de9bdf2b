// Package oprftest helps tests of package oprf reach the independent
// RFC 9497 implementation in ../shared/peers (@cloudflare/voprf-ts).
package oprftest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	once    sync.Once
	dir     string
	initErr string
)

// PeersDir locates ../shared/peers next to the repository (or
// $XNODE_PEERS_DIR), copies it to a temporary directory (CI lays it out
// read-only) and runs `npm ci` there, once per test binary. It skips the
// test when node or npm is missing, unless $CI is set, where that fails.
func PeersDir(t testing.TB) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed, and CI is set: the interop test must run", tool)
			}
			t.Skipf("%s is not installed; skipping the cross-implementation test", tool)
		}
	}
	once.Do(setup)
	if initErr != "" {
		t.Fatal(initErr)
	}
	return dir
}

func setup() {
	src := os.Getenv("XNODE_PEERS_DIR")
	if src == "" {
		root, err := repoRoot()
		if err != nil {
			initErr = err.Error()
			return
		}
		src = filepath.Join(root, "..", "shared", "peers")
	}
	if _, err := os.Stat(filepath.Join(src, "oprf_interop.mjs")); err != nil {
		initErr = "the peers harness is missing: " + err.Error() + " (set XNODE_PEERS_DIR)"
		return
	}
	tmp, err := os.MkdirTemp("", "xnode-peers-")
	if err != nil {
		initErr = err.Error()
		return
	}
	// The copy lives as long as the test binary; the OS temp dir reclaims it.
	if out, err := exec.Command("cp", "-r", src+"/.", tmp).CombinedOutput(); err != nil {
		initErr = "failed to copy the peers harness: " + err.Error() + ": " + string(out)
		return
	}
	_ = os.RemoveAll(filepath.Join(tmp, "node_modules"))
	_ = exec.Command("chmod", "-R", "u+w", tmp).Run()
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		initErr = "npm ci failed in the peers harness: " + err.Error() + "\n" + string(out)
		return
	}
	dir = tmp
}

func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", os.ErrNotExist
		}
	}
}

// Node runs `node oprf_interop.mjs args…` in dir and returns its
// trimmed standard output as key=value pairs (or the single line under "").
func Node(t testing.TB, dir string, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command("node", append([]string{"oprf_interop.mjs"}, args...)...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node oprf_interop.mjs %s: %v\n%s", args[0], err, stderr.String())
	}
	res := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			res[k] = v
		} else {
			res[""] = line
		}
	}
	return res
}

// NodeErr runs `node oprf_interop.mjs args…` and returns its error, if any.
func NodeErr(dir string, args ...string) error {
	cmd := exec.Command("node", append([]string{"oprf_interop.mjs"}, args...)...)
	cmd.Dir = dir
	return cmd.Run()
}
