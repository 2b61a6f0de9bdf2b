package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"xnode/cmd/xnode/internal/bench"
	"xnode/crypto"
	"xnode/protocol/psi/ecdh"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure protocols in one process against the primitive floor",
	}
	cmd.AddCommand(newBenchPSICmd())
	return cmd
}

type benchPSIOptions struct {
	bench.Options
	JSON bool
}

func newBenchPSICmd() *cobra.Command {
	var o benchPSIOptions
	cmd := &cobra.Command{
		Use:   "psi-ecdh",
		Short: "Run ECDH-PSI end to end on synthetic resident IDs and compare with the floor",
		Long: `Runs both parties of ECDH-PSI in this process over an in-memory transport on
synthetic resident-ID sets with a known overlap, checks the answer, and prints
the wall time per phase, bytes each way, peak memory, and the primitive floor
(one hash-to-group and two scalar multiplications per item per side, on the
same cores) with the ratio protocol/floor. Exits 3 if the answer is wrong.`,
		Example: `  xnode bench psi-ecdh --n 100000 --m 100000
  xnode bench psi-ecdh --n 1000000 --m 1000000 --overlap 0.3 --suite p256-sha256 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchPSI(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.N, "n", 10000, "querier set size")
	f.IntVar(&o.M, "m", 10000, "responder set size")
	f.Float64Var(&o.Overlap, "overlap", 0.5, "shared items as a fraction of the smaller set")
	f.StringVar(&o.Suite, "suite", crypto.DefaultSuite, "crypto suite: "+strings.Join(crypto.Names(), ", "))
	f.StringVar(&o.Mode, "mode", ecdh.Intersection.String(), "intersection, intersection-both or cardinality")
	f.IntVar(&o.BatchSize, "batch", ecdh.DefaultBatchSize, "elements per batch message")
	f.IntVar(&o.Workers, "workers", 0, "goroutines per side (default: all cores)")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the synthetic sets")
	f.BoolVar(&o.NoFloor, "no-floor", false, "skip measuring the primitive floor")
	f.IntVar(&o.Repeat, "repeat", 1, "run protocol and floor this many times, alternating, and report the best of each")
	f.StringVar(&o.XFile, "querier-file", "", "read the querier's IDs from this file (one per line) instead of generating them")
	f.StringVar(&o.YFile, "responder-file", "", "read the responder's IDs from this file (one per line)")
	f.BoolVar(&o.JSON, "json", false, "print one JSON object instead of a table")
	return cmd
}

func runBenchPSI(ctx context.Context, o benchPSIOptions, stdout, stderr io.Writer) error {
	if _, err := crypto.Lookup(o.Suite); err != nil {
		return usageError("%v", err)
	}
	if _, err := ecdh.ParseMode(o.Mode); err != nil {
		return usageError("%v", err)
	}
	if o.N < 0 || o.M < 0 || o.Overlap < 0 || o.Overlap > 1 {
		return usageError("--n and --m must be ≥ 0 and --overlap between 0 and 1")
	}
	if o.Repeat < 1 {
		return usageError("--repeat %d: want at least 1", o.Repeat)
	}
	if o.BatchSize < 1 || o.BatchSize > ecdh.MaxBatchSize {
		return usageError("--batch %d: want 1 to %d", o.BatchSize, ecdh.MaxBatchSize)
	}
	if isTerminal(stderr) {
		bar := progressbar.NewOptions64(int64(o.N+o.M),
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("psi-ecdh"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("items"),
			progressbar.OptionShowIts(),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(200_000_000))
		o.Progress = func(q, r ecdh.Stats) {
			// Items fully processed: the querier's matched peer items plus its
			// replied queries, approximated by the phases' counters.
			done := q.Done
			if q.Phase == ecdh.PhaseMatch || q.Phase == ecdh.PhaseDone || q.Phase == ecdh.PhaseFinish {
				done = int64(o.N) + q.Done
			}
			_ = bar.Set64(done)
		}
		defer func() { _ = bar.Finish() }()
	}
	rep, err := bench.Run(ctx, o.Options)
	if errors.Is(err, bench.ErrWrongAnswer) {
		printBench(stdout, rep, o.JSON)
		return &exitError{code: exitWrong, err: err}
	}
	if err != nil {
		return fmt.Errorf("benchmark failed: %w", err)
	}
	return printBench(stdout, rep, o.JSON)
}

func printBench(w io.Writer, rep bench.Report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "suite\t%s\n", rep.Suite)
	fmt.Fprintf(tw, "mode\t%s\n", rep.Mode)
	fmt.Fprintf(tw, "sets\t%d × %d, %d shared\n", rep.N, rep.M, rep.Overlap)
	fmt.Fprintf(tw, "answer\t%d shared (correct: %v)\n", rep.Cardinality, rep.Correct)
	fmt.Fprintf(tw, "cores\t%d\n", rep.Cores)
	fmt.Fprintf(tw, "wall time\t%.3f s (%.0f items/s)\n", rep.Seconds, rep.ItemsPerSec)
	if len(rep.Samples) > 1 {
		fmt.Fprintf(tw, "  runs\t%v s (best counts)\n", rep.Samples)
	}
	phases := make([]string, 0, len(rep.Phases))
	for p := range rep.Phases {
		phases = append(phases, p)
	}
	sort.Strings(phases)
	for _, p := range phases {
		fmt.Fprintf(tw, "  %s\t%.3f s\n", p, rep.Phases[p])
	}
	fmt.Fprintf(tw, "bytes querier→responder\t%d\n", rep.BytesQToR)
	fmt.Fprintf(tw, "bytes responder→querier\t%d\n", rep.BytesRToQ)
	fmt.Fprintf(tw, "peak RSS\t%.1f MiB\n", float64(rep.PeakRSSBytes)/(1<<20))
	if rep.FloorSeconds > 0 {
		fmt.Fprintf(tw, "floor\t%.3f s (hash + 2 scalar mults per item per side)\n", rep.FloorSeconds)
		if len(rep.FloorSamples) > 1 {
			fmt.Fprintf(tw, "  runs\t%v s (best counts)\n", rep.FloorSamples)
		}
		fmt.Fprintf(tw, "protocol / floor\t%.2f×\n", rep.RatioToFloor)
	}
	return tw.Flush()
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
