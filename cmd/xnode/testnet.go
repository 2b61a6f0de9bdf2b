package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"xnode/testnet"
	"xnode/testnet/synth"
)

// demoQueryTimeout bounds one demo query.
const demoQueryTimeout = 5 * time.Minute

type testnetOptions struct {
	Dir     string
	Nodes   int
	Records int
	Overlap float64
	Seed    int64
	NoData  bool
	Keep    bool
	JSON    bool
	// Binary is the xnode executable the nodes run; empty: this one.
	Binary string
	// changed reports whether a flag was given; nil: none was.
	changed func(name string) bool
	// run runs one demo query; nil: through the nodes' API. Tests inject it.
	run testnet.QueryFunc
}

func newTestnetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "testnet",
		Short: "Run a local consortium on loopback: up, demo, down",
		Long: `A testnet is a consortium root, N node data dirs and synthetic datasets
with known overlaps in one directory, with the nodes running in the background
on free loopback ports. After 'up', every command works against a node with
--dir DIR/node1. No policy is written: xnode has no policy engine yet, so every
member may query every other member.

  xnode testnet demo                      up, check every built-in query against the truth, down
  xnode testnet up --dir ./tn --nodes 3   start one and keep it running
  xnode testnet down --dir ./tn           stop it`,
	}
	// --dir here names the testnet directory, not a node's data dir.
	cmd.PersistentFlags().String(dirFlag, "", "testnet directory (demo: a temporary one if not given)")
	cmd.AddCommand(newTestnetUpCmd(), newTestnetDemoCmd(), newTestnetDownCmd())
	return cmd
}

// testnetDir reads --dir without the node default (~/.xnode): a testnet
// directory is always named.
func testnetDir(cmd *cobra.Command) string {
	dir, _ := cmd.Flags().GetString(dirFlag)
	if dir == "" {
		return ""
	}
	return dataDirFrom(dir)
}

func addTestnetDataFlags(cmd *cobra.Command, o *testnetOptions) {
	f := cmd.Flags()
	f.IntVar(&o.Nodes, "nodes", testnet.DefaultNodes, "number of nodes")
	f.IntVar(&o.Records, "records", testnet.DefaultRecords, "client records per node")
	f.Float64Var(&o.Overlap, "overlap", testnet.DefaultOverlap, "expected shared clients of two nodes, as a fraction of --records")
	f.Int64Var(&o.Seed, "seed", testnet.DefaultSeed, "seed of the synthetic data")
}

func newTestnetUpCmd() *cobra.Command {
	var o testnetOptions
	cmd := &cobra.Command{
		Use:   "up --dir DIR",
		Short: "Create (or restart) a testnet in DIR and start its nodes",
		Long: `Creates DIR/consortium, DIR/node1..N (admitted, each configured with every
other node as a peer), synthetic data in DIR/data with its ground truth
(DIR/data/truth.json), starts the nodes in the background (logs in
DIR/nodeK/node.log), waits until all are connected, imports the datasets
'clients' and 'risklist' into every node and writes DIR/testnet.json.

Run again on a stopped testnet, it restarts it with the same keys and data.`,
		Example: `  xnode testnet up --dir ./tn
  xnode testnet up --dir ./tn --nodes 5 --records 100000 --overlap 0.1
  xnode --dir ./tn/node1 peers list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Dir, o.changed = testnetDir(cmd), cmd.Flags().Changed
			return runTestnetUp(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	addTestnetDataFlags(cmd, &o)
	cmd.Flags().BoolVar(&o.NoData, "no-data", false, "create no datasets")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print testnet.json")
	return cmd
}

func newTestnetDownCmd() *cobra.Command {
	var o testnetOptions
	cmd := &cobra.Command{
		Use:     "down --dir DIR",
		Short:   "Stop the nodes of the testnet in DIR",
		Long:    `Sends SIGTERM to every node's process group, SIGKILL after 10 s, and marks the nodes stopped. Nodes that already died are fine. The directory stays; 'up' restarts it.`,
		Example: `  xnode testnet down --dir ./tn`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Dir = testnetDir(cmd)
			return runTestnetDown(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print testnet.json")
	return cmd
}

func newTestnetDemoCmd() *cobra.Command {
	var o testnetOptions
	cmd := &cobra.Command{
		Use:   "demo [--dir DIR]",
		Short: "Run every built-in query on a testnet and check it against the ground truth",
		Long: `Brings a testnet up (in a temporary directory unless --dir names one; a
running testnet in --dir is used as it is), runs every built-in query from
node1 to each other node, prints each answer beside the ground truth computed
from the plaintext, and stops what it started. Exits 3 if any answer differs.`,
		Example: `  xnode testnet demo
  xnode testnet demo --nodes 4 --records 50000
  xnode testnet demo --dir ./tn --keep`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Dir, o.changed = testnetDir(cmd), cmd.Flags().Changed
			return runTestnetDemo(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	addTestnetDataFlags(cmd, &o)
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "leave the nodes running and the directory in place")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the report as JSON")
	return cmd
}

// upOptions turns CLI options into testnet.Options. On a directory that
// holds a testnet, flags not given take the testnet's own values, so a
// bare `up --dir DIR` restarts it.
func (o testnetOptions) upOptions(stderr io.Writer) (testnet.Options, error) {
	bin := o.Binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return testnet.Options{}, fmt.Errorf("failed to find the xnode binary to run the nodes with: %w", err)
		}
		bin = exe
	}
	up := testnet.Options{
		Dir: o.Dir, Binary: bin, Nodes: o.Nodes, Records: o.Records, Overlap: o.Overlap, Seed: o.Seed, NoData: o.NoData,
		Logf: func(format string, args ...any) { fmt.Fprintf(stderr, "testnet: "+format+"\n", args...) },
	}
	changed := o.changed
	if changed == nil {
		changed = func(string) bool { return false }
	}
	if st, err := testnet.Load(o.Dir); err == nil {
		if !changed("nodes") {
			up.Nodes = len(st.Nodes)
		}
		if !changed("no-data") {
			up.NoData = st.Data == nil
		}
		if d := st.Data; d != nil {
			if !changed("records") {
				up.Records = d.Params.Records
			}
			if !changed("overlap") {
				up.Overlap = d.Params.Overlap
			}
			if !changed("seed") {
				up.Seed = d.Params.Seed
			}
			if up.Records == d.Params.Records {
				up.RiskRecords = d.Params.RiskRecords
			}
		}
	}
	return up, nil
}

func runTestnetUp(ctx context.Context, o testnetOptions, stdout, stderr io.Writer) error {
	if o.Dir == "" {
		return usageError("name the testnet directory with --dir")
	}
	up, err := o.upOptions(stderr)
	if err != nil {
		return err
	}
	st, err := testnet.Up(ctx, up)
	if err != nil {
		return err
	}
	if o.JSON {
		return json.NewEncoder(stdout).Encode(st)
	}
	printTestnet(stdout, st)
	fmt.Fprintf(stdout, "\nnext:\n  xnode --dir %s peers list\n", st.Nodes[0].Dir)
	if st.Data != nil && len(st.Nodes) > 1 {
		fmt.Fprintf(stdout, "  xnode --dir %s query run --kind overlap --dataset %s --peers %s\n", st.Nodes[0].Dir, testnet.DatasetClients, st.Nodes[1].Name)
		fmt.Fprintf(stdout, "  xnode testnet demo --dir %s\n", st.Dir)
	}
	fmt.Fprintf(stdout, "  xnode testnet down --dir %s\n", st.Dir)
	return nil
}

// printTestnet prints the nodes of st as a table.
func printTestnet(w io.Writer, st *testnet.State) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPEER ID\tP2P PORT\tAPI\tPID\tLOG")
	for _, n := range st.Nodes {
		pid := "-"
		if n.Pid != 0 {
			pid = strconv.Itoa(n.Pid)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", n.Name, n.PeerID, n.P2PPort, n.API, pid, n.Log)
	}
	tw.Flush()
	fmt.Fprintf(w, "consortium %q (%s) in %s\n", st.Consortium.Name, st.Consortium.ID, st.Consortium.Dir)
	if st.Data != nil {
		p := st.Data.Params
		fmt.Fprintf(w, "data: %d clients and %d risk-list rows per node in %s (datasets %q, %q); ground truth %s\n",
			p.Records, p.RiskRecords, st.Data.Dir, testnet.DatasetClients, testnet.DatasetRiskList, st.Data.Truth)
	} else {
		fmt.Fprintln(w, "data: none (--no-data)")
	}
	fmt.Fprintf(w, "policy: %s\n", st.Policy)
}

func runTestnetDown(ctx context.Context, o testnetOptions, stdout, stderr io.Writer) error {
	if o.Dir == "" {
		return usageError("name the testnet directory with --dir")
	}
	st, err := testnet.Down(ctx, o.Dir, func(format string, args ...any) {
		fmt.Fprintf(stderr, "testnet: "+format+"\n", args...)
	})
	if err != nil {
		return err
	}
	if o.JSON {
		return json.NewEncoder(stdout).Encode(st)
	}
	fmt.Fprintf(stdout, "stopped the %d nodes of the testnet in %s; `xnode testnet up --dir %s` restarts it\n", len(st.Nodes), st.Dir, st.Dir)
	return nil
}

func runTestnetDemo(ctx context.Context, o testnetOptions, stdout, stderr io.Writer) (err error) {
	t0 := time.Now()
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "testnet: "+format+"\n", args...) }
	temp := o.Dir == ""
	if temp {
		if o.Dir, err = os.MkdirTemp("", "xnode-testnet-"); err != nil {
			return fmt.Errorf("failed to make a temporary directory: %w", err)
		}
		logf("using the temporary directory %s", o.Dir)
	}
	var st *testnet.State
	started := false
	defer func() {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			err = errors.New("interrupted")
		}
		// Stop what the demo started and remove what it made, also after an
		// error or Ctrl-C (ctx is cancelled then, so use a fresh one).
		if o.Keep {
			if st != nil {
				logf("kept the testnet running in %s; stop it with `xnode testnet down --dir %s`", o.Dir, o.Dir)
			}
			return
		}
		if started {
			if _, derr := testnet.Down(context.Background(), o.Dir, logf); derr != nil {
				err = errors.Join(err, derr)
				return // leave the dir: it names the pids to stop
			}
		}
		if temp {
			if rerr := os.RemoveAll(o.Dir); rerr != nil {
				err = errors.Join(err, fmt.Errorf("failed to remove %s: %w", o.Dir, rerr))
			}
		}
	}()
	if prev, lerr := testnet.Load(o.Dir); lerr == nil && len(prev.Live()) == len(prev.Nodes) {
		logf("using the running testnet in %s", o.Dir)
		st = prev
	} else {
		up, err := o.upOptions(stderr)
		if err != nil {
			return err
		}
		if up.NoData {
			return fmt.Errorf("the testnet in %s has no data (made with --no-data); the demo needs data: run it on another --dir", o.Dir)
		}
		started = true // Up stops its nodes itself on error; Down then finds none
		if st, err = testnet.Up(ctx, up); err != nil {
			return err
		}
	}
	if st.Data == nil {
		return fmt.Errorf("the testnet in %s has no data (made with --no-data); the demo needs data: run it on another --dir", o.Dir)
	}
	truth, err := synth.ReadTruth(st.Data.Truth)
	if err != nil {
		return err
	}
	run := o.run
	if run == nil {
		run = testnet.APIQueryFunc(st, demoQueryTimeout)
	}
	rep, err := testnet.Demo(ctx, testnet.DemoOptions{Truth: truth, Run: run, Logf: logf})
	if err != nil {
		return err
	}
	return reportDemo(rep, time.Since(t0), o.JSON, stdout)
}

// reportDemo prints the report and returns an exit-3 error if any answer
// differs from the ground truth.
func reportDemo(rep *testnet.Report, total time.Duration, asJSON bool, w io.Writer) error {
	if asJSON {
		if err := json.NewEncoder(w).Encode(rep); err != nil {
			return err
		}
	} else {
		if err := rep.WriteTable(w); err != nil {
			return err
		}
		fmt.Fprintf(w, "\n%d queries, %d wrong; queries %.1fs, total %.1fs\n", len(rep.Rows), len(rep.Failed()), rep.Elapsed.Seconds(), total.Seconds())
	}
	if !rep.OK() {
		if len(rep.Rows) == 0 {
			return &exitError{code: exitWrong, err: errors.New("the demo checked no query")}
		}
		return &exitError{code: exitWrong, err: fmt.Errorf("%d of %d answers differ from the ground truth", len(rep.Failed()), len(rep.Rows))}
	}
	return nil
}
