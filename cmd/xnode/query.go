package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"xnode/node/api"
)

func newQueryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "query",
		Aliases: []string{"queries"},
		Short:   "Run joint queries with peers and read their results",
		Long: `A query joins this node's dataset with datasets of peers without any record
leaving its owner. Kinds:

  overlap   how many identifiers the datasets share (ECDH-PSI, cardinality only)
  match     which of this node's identifiers the peers also hold (ECDH-PSI)

` + "`xnode query run`" + ` submits a query and waits for its result; ` + "`query submit`" + `
returns at once and ` + "`query status`" + ` / ` + "`query result`" + ` follow it.`,
	}
	cmd.AddCommand(newQueryRunCmd(), newQuerySubmitCmd(), newQueryStatusCmd(), newQueryResultCmd(), newQueryListCmd())
	return cmd
}

type queryOptions struct {
	clientOptions
	api.QueryRequest
	// Timeout bounds how long run waits for the result; the query itself
	// goes on in the node.
	Timeout time.Duration
	// Poll is the first interval between status polls; it doubles up to
	// maxPoll.
	Poll time.Duration
}

// roleResponder is Query.Role at a node that answered another's query.
const roleResponder = "responder"

const (
	defaultPoll = 250 * time.Millisecond
	maxPoll     = 2 * time.Second
)

func addQueryRequestFlags(cmd *cobra.Command, o *queryOptions) {
	f := cmd.Flags()
	f.StringVar(&o.Kind, "kind", "", "query kind: overlap or match (required)")
	f.StringVar(&o.Dataset, "dataset", "", "this node's dataset (required)")
	f.StringSliceVar(&o.Peers, "peers", nil, "peer names or peer IDs, comma-separated (required)")
	f.StringVar(&o.PeerDataset, "peer-dataset", "", "the peers' dataset (default: the same name as --dataset)")
	f.StringVar(&o.Suite, "suite", "", "crypto suite: ristretto255-sha512 or p256-sha256 (default: the node's)")
}

func (o queryOptions) checkRequest() error {
	switch {
	case o.Kind == "":
		return usageError("choose the query with --kind %s or --kind %s", api.KindOverlap, api.KindMatch)
	case o.Dataset == "":
		return usageError("name this node's dataset with --dataset")
	case len(o.Peers) == 0:
		return usageError("name the peers with --peers (`xnode peers list` shows them)")
	}
	return nil
}

func newQueryRunCmd() *cobra.Command {
	var (
		o      queryOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "run --kind KIND --dataset NAME --peers P1[,P2]",
		Short: "Submit a query, wait for it and print its result",
		Long: `Submits a query to this node, follows it until it is done or failed, and
prints the result. With --json the last line of output is the query as one JSON
object. Exits 1 if the query failed or did not finish within --timeout (it goes
on in the node; follow it with ` + "`xnode query status ID`" + `).`,
		Example: `  xnode query run --kind overlap --dataset loans --peers bank-b
  xnode query run --kind match --dataset loans --peers bank-b,bank-c --peer-dataset risk --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.clientOptions = clientOptionsFrom(cmd, asJSON)
			return runQueryRun(cmd.Context(), o, args)
		},
	}
	addQueryRequestFlags(cmd, &o)
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long to wait for the result")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the query as JSON")
	return cmd
}

func runQueryRun(ctx context.Context, o queryOptions, _ []string) error {
	if err := o.checkRequest(); err != nil {
		return err
	}
	if o.Timeout <= 0 {
		return usageError("--timeout %s: want a positive duration such as 10m", o.Timeout)
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	q, err := c.SubmitQuery(ctx, o.QueryRequest)
	if err != nil {
		return refused(err)
	}
	if !o.JSON {
		fmt.Fprintf(o.Stderr, "submitted query %s\n", q.ID)
	}
	q, err = waitQuery(ctx, c, q, o)
	if err != nil {
		if o.JSON && q.ID != "" {
			_ = printJSON(o.Stdout, q)
		}
		return err
	}
	if err := printQuery(o.Stdout, q, o.JSON); err != nil {
		return err
	}
	return queryFailed(q)
}

// waitQuery polls q until it is done or failed, showing its progress on
// stderr if that is a terminal. It returns the last state seen.
func waitQuery(ctx context.Context, c *api.Client, q api.Query, o queryOptions) (api.Query, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	poll := o.Poll
	if poll <= 0 {
		poll = defaultPoll
	}
	var bar *progressbar.ProgressBar
	if isTerminal(o.Stderr) {
		bar = newBar(o.Stderr, -1, "query "+q.ID, false)
		defer func() { _ = bar.Finish() }()
	}
	for !finished(q) {
		if bar != nil && q.Progress != nil {
			desc := fmt.Sprintf("query %s: %s", q.ID, q.Progress.Phase)
			if q.Progress.Peer != "" {
				desc += " with " + q.Progress.Peer
			}
			bar.Describe(desc)
			if q.Progress.Total > 0 {
				bar.ChangeMax64(q.Progress.Total)
			}
			_ = bar.Set64(q.Progress.Done)
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return q, stillRunning(q, o.Timeout, ctx.Err())
		case <-t.C:
		}
		poll = min(2*poll, maxPoll)
		next, err := c.GetQuery(ctx, q.ID)
		if err != nil {
			if ctx.Err() != nil {
				return q, stillRunning(q, o.Timeout, ctx.Err())
			}
			return q, fmt.Errorf("failed to follow query %s: %w (follow it with `xnode query status %s`)", q.ID, err, q.ID)
		}
		q = next
	}
	return q, nil
}

func stillRunning(q api.Query, timeout time.Duration, err error) error {
	why := "the wait was interrupted"
	if errors.Is(err, context.DeadlineExceeded) {
		why = fmt.Sprintf("no result after %s", timeout)
	}
	return &exitError{code: exitFailure, err: fmt.Errorf("query %s is still %s: %s; it goes on in the node, follow it with `xnode query status %s`",
		q.ID, q.Status, why, q.ID)}
}

func finished(q api.Query) bool {
	return q.Status == api.StatusDone || q.Status == api.StatusFailed
}

// queryFailed returns an exit error for a failed query.
func queryFailed(q api.Query) error {
	if q.Status != api.StatusFailed {
		return nil
	}
	msg := q.Error
	if msg == "" {
		msg = "no reason given"
	}
	return &exitError{code: exitFailure, err: fmt.Errorf("query %s failed: %s; check the peers with `xnode peers list` and the node's log, then submit it again",
		q.ID, msg)}
}

func newQuerySubmitCmd() *cobra.Command {
	var (
		o      queryOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "submit --kind KIND --dataset NAME --peers P1[,P2]",
		Short: "Submit a query and print its ID without waiting",
		Example: `  id=$(xnode query submit --kind overlap --dataset loans --peers bank-b)
  xnode query status $id`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.clientOptions = clientOptionsFrom(cmd, asJSON)
			return runQuerySubmit(cmd.Context(), o, args)
		},
	}
	addQueryRequestFlags(cmd, &o)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the query as JSON")
	return cmd
}

func runQuerySubmit(ctx context.Context, o queryOptions, _ []string) error {
	if err := o.checkRequest(); err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	q, err := c.SubmitQuery(ctx, o.QueryRequest)
	if err != nil {
		return refused(err)
	}
	if o.JSON {
		return printJSON(o.Stdout, q)
	}
	fmt.Fprintln(o.Stdout, q.ID)
	return nil
}

func newQueryStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show a query's status, progress and summary",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runQueryStatus(cmd.Context(), queryOptions{clientOptions: clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the query as JSON")
	return cmd
}

func runQueryStatus(ctx context.Context, o queryOptions, args []string) error {
	q, err := getQuery(ctx, o, args)
	if err != nil {
		return err
	}
	if o.JSON {
		return printJSON(o.Stdout, q)
	}
	if err := printQuerySummary(o.Stdout, q); err != nil {
		return err
	}
	switch q.Status {
	case api.StatusDone:
		if q.Result != nil {
			fmt.Fprintf(o.Stdout, "\n%d result rows; print them with `xnode query result %s`\n", len(q.Result.Rows), q.ID)
		}
	case api.StatusFailed:
		return queryFailed(q)
	}
	return nil
}

func newQueryResultCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "result ID",
		Short: "Print a finished query's result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runQueryResult(cmd.Context(), queryOptions{clientOptions: clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the query as JSON")
	return cmd
}

func runQueryResult(ctx context.Context, o queryOptions, args []string) error {
	q, err := getQuery(ctx, o, args)
	if err != nil {
		return err
	}
	if !finished(q) {
		return &exitError{code: exitFailure, err: fmt.Errorf("query %s is still %s; wait for it with `xnode query status %s`", q.ID, q.Status, q.ID)}
	}
	if err := printQuery(o.Stdout, q, o.JSON); err != nil {
		return err
	}
	return queryFailed(q)
}

func getQuery(ctx context.Context, o queryOptions, args []string) (api.Query, error) {
	if len(args) != 1 || args[0] == "" {
		return api.Query{}, usageError("name the query by its ID (`xnode query list` shows them)")
	}
	c, err := o.client()
	if err != nil {
		return api.Query{}, err
	}
	return c.GetQuery(ctx, args[0])
}

func newQueryListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the queries this node submitted or answered",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runQueryList(cmd.Context(), queryOptions{clientOptions: clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func runQueryList(ctx context.Context, o queryOptions, _ []string) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	qs, err := c.ListQueries(ctx)
	if err != nil {
		return err
	}
	if o.JSON {
		if qs == nil {
			qs = []api.Query{}
		}
		return printJSON(o.Stdout, qs)
	}
	if len(qs) == 0 {
		fmt.Fprintln(o.Stdout, "no queries yet; run one with `xnode query run --kind overlap --dataset NAME --peers PEER`")
		return nil
	}
	tw := newTable(o.Stdout)
	row(tw, "ID", "KIND", "ROLE", "STATUS", "DATASET", "PEERS", "SHARED", "CREATED")
	for _, q := range qs {
		shared := "-"
		if q.Status == api.StatusDone && q.Role != roleResponder {
			shared = fmt.Sprint(q.Summary.IntersectionSize)
		}
		row(tw, q.ID, q.Kind, orDash(q.Role), q.Status, q.Dataset, listOr(q.Peers, "-"), shared, fmtTime(q.Created))
	}
	return tw.Flush()
}

// printQuery prints a finished query: one JSON line, or its summary and
// result table.
func printQuery(w io.Writer, q api.Query, asJSON bool) error {
	if asJSON {
		return printJSON(w, q)
	}
	if err := printQuerySummary(w, q); err != nil {
		return err
	}
	if q.Result == nil || q.Status != api.StatusDone {
		return nil
	}
	fmt.Fprintln(w)
	if len(q.Result.Rows) == 0 {
		fmt.Fprintln(w, "no rows")
		return nil
	}
	tw := newTable(w)
	row(tw, anySlice(q.Result.Columns)...)
	for _, r := range q.Result.Rows {
		row(tw, anySlice(r)...)
	}
	return tw.Flush()
}

func printQuerySummary(w io.Writer, q api.Query) error {
	tw := newTable(w)
	row(tw, "query", q.ID)
	row(tw, "kind", q.Kind)
	row(tw, "status", q.Status)
	if q.Error != "" {
		row(tw, "error", q.Error)
	}
	ds := q.Dataset
	if q.DatasetVersion > 0 {
		ds = fmt.Sprintf("%s (version %d)", q.Dataset, q.DatasetVersion)
	}
	row(tw, "dataset", ds)
	peers := listOr(q.Peers, "-")
	if q.PeerDataset != "" {
		peers += " (dataset " + q.PeerDataset + ")"
	}
	row(tw, "peers", peers)
	if q.Suite != "" {
		row(tw, "suite", q.Suite)
	}
	if p := q.Progress; p != nil && !finished(q) {
		prog := p.Phase
		if p.Peer != "" {
			prog += " with " + p.Peer
		}
		if p.Total > 0 {
			prog += fmt.Sprintf(" %d/%d", p.Done, p.Total)
		}
		row(tw, "progress", prog)
	}
	if q.Status == api.StatusDone && q.Role == roleResponder {
		row(tw, "shared", "not revealed to this node (it answered the query)")
	} else if q.Status == api.StatusDone {
		shared := fmt.Sprint(q.Summary.IntersectionSize)
		if len(q.Summary.PerPeer) > 1 {
			shared += " (" + perPeer(q.Summary.PerPeer) + ")"
		}
		row(tw, "shared", shared)
		if q.Summary.OwnSize > 0 {
			row(tw, "own size", q.Summary.OwnSize)
		}
		if len(q.Summary.PeerSizes) > 0 {
			row(tw, "peer sizes", perPeer(q.Summary.PeerSizes))
		}
		if q.Summary.Revealed != "" {
			row(tw, "revealed", q.Summary.Revealed)
		}
	}
	row(tw, "created", fmtTime(q.Created))
	if !q.Finished.IsZero() {
		row(tw, "finished", fmt.Sprintf("%s (%s)", fmtTime(q.Finished), q.Finished.Sub(q.Created).Round(time.Millisecond)))
	}
	return tw.Flush()
}

func perPeer(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// refused explains an error of SubmitQuery.
func refused(err error) error {
	var e *api.Error
	if errors.As(err, &e) {
		return fmt.Errorf("the node refused the query: %w", err)
	}
	return err
}
