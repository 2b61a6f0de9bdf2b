package plugintest_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"xnode/plugins"
	"xnode/plugins/builtin/match"
	"xnode/plugins/plugintest"
)

// collector reads every row before it emits (unbounded memory) and ignores
// cancellation while it reads; the rest is the match plugin.
type collector struct{ match.Plugin }

func (collector) Prepare(_ context.Context, _ plugins.PrepareRequest, rows plugins.RowReader, emit func([]plugins.Item) error) error {
	var all []plugins.Item
	for n := 0; n < 200_000; n++ { // endless inputs: stop somewhere
		chunk, err := rows.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		for _, r := range chunk {
			all = append(all, plugins.Item{Pos: r.Pos})
		}
	}
	return emit(all)
}

// TestBadPlugin runs the suite on collector; it fails by design, so it only
// runs as TestSuiteCatchesBadPlugin's child.
func TestBadPlugin(t *testing.T) {
	if os.Getenv("PLUGINTEST_BAD_CHILD") != "1" {
		t.Skip("runs only as TestSuiteCatchesBadPlugin's child")
	}
	plugintest.Run(t, collector{}, plugintest.Options{Timeout: 2e9})
}

func TestSuiteCatchesBadPlugin(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestBadPlugin$", "-test.v")
	cmd.Env = append(os.Environ(), "PLUGINTEST_BAD_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the conformance suite passed a plugin that collects all rows before emitting:\n%s", out)
	}
	for _, want := range []string{
		"--- FAIL: TestBadPlugin/Prepare/querier",
		"without emitting an item",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("suite output lacks %q:\n%s", want, out)
		}
	}
}

// wrongHeader plans a result ending in AllColumns but names a header in
// its summary that its rows do not fit.
type wrongHeader struct{ match.Plugin }

func (wrongHeader) Plan(ctx context.Context, params map[string]string) (plugins.Plan, error) {
	p, err := match.Plugin{}.Plan(ctx, params)
	p.ResultColumns = append(p.ResultColumns, plugintest.AllColumns)
	return p, err
}

func (w wrongHeader) Finalize(ctx context.Context, req plugins.FinalizeRequest, m plugins.MatchReader, emit func([]plugins.ResultRow) error) (plugins.Summary, error) {
	sum, err := w.Plugin.Finalize(ctx, req, m, emit)
	if sum != nil {
		sum[plugintest.ResultColumnsKey] = "peer,id,extra"
	}
	return sum, err
}

// TestBadHeader runs the suite on wrongHeader; it fails by design, so it
// only runs as TestSuiteCatchesWrongHeader's child.
func TestBadHeader(t *testing.T) {
	if os.Getenv("PLUGINTEST_BAD_CHILD") != "1" {
		t.Skip("runs only as TestSuiteCatchesWrongHeader's child")
	}
	plugintest.Run(t, wrongHeader{}, plugintest.Options{Rows: 10_000})
}

func TestSuiteCatchesWrongHeader(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestBadHeader$", "-test.v")
	cmd.Env = append(os.Environ(), "PLUGINTEST_BAD_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the conformance suite passed rows of 2 cells under a summary header of 3:\n%s", out)
	}
	for _, want := range []string{
		"--- FAIL: TestBadHeader/Finalize",
		`want 3 for the header ["peer" "id" "extra"]`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("suite output lacks %q:\n%s", want, out)
		}
	}
}
