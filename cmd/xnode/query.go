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
		Short:   "Run joint queries with peers, approve theirs and read the results",
		Long: `A query joins this node's dataset with datasets of peers without any record
leaving its owner. What it computes is chosen by a plugin (--plugin NAME, with
--param KEY=VALUE for its parameters); ` + "`xnode plugin list`" + ` shows the installed
plugins and their parameters. Built-ins:

  overlap   how many identifiers the datasets share (ECDH-PSI, cardinality only)
  match     which of this node's identifiers the peers also hold (ECDH-PSI)

A query is proposed to its peers, may wait for a person's approval at some of
them (` + "`xnode query pending`" + `, ` + "`query approve ID`" + `, ` + "`query deny ID --reason …`" + `),
then runs; it ends done, failed, denied or expired.

` + "`xnode query run`" + ` submits a query and waits for its result; ` + "`query submit`" + `
returns at once and ` + "`query status`" + ` / ` + "`query result`" + ` follow it.`,
	}
	cmd.AddCommand(newQueryRunCmd(), newQuerySubmitCmd(), newQueryStatusCmd(), newQueryResultCmd(), newQueryListCmd(),
		newQueryPendingCmd(), newQueryApproveCmd(), newQueryDenyCmd())
	return cmd
}

type queryOptions struct {
	clientOptions
	api.QueryRequest
	// Param holds the --param flags as given, KEY=VALUE each; request
	// parses them into QueryRequest.Params.
	Param []string
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
	f.StringVar(&o.Plugin, "plugin", "", "the query plugin `NAME`, such as overlap or match (required; xnode plugin list shows the installed ones)")
	f.StringVar(&o.Kind, "kind", "", "the older name of --plugin, kept as an alias of it (`NAME`)")
	f.StringArrayVar(&o.Param, "param", nil, "a plugin parameter `KEY=VALUE`; repeat for several (the value may hold commas)")
	f.StringVar(&o.Dataset, "dataset", "", "this node's dataset (required)")
	f.StringSliceVar(&o.Peers, "peers", nil, "peer names or peer IDs, comma-separated (required)")
	f.StringVar(&o.PeerDataset, "peer-dataset", "", "the peers' dataset (default: the same name as --dataset)")
	f.StringVar(&o.Suite, "suite", "", "crypto suite: ristretto255-sha512 or p256-sha256 (default: the node's)")
}

// request checks the flags and returns the request to send: --kind folds
// into --plugin and --param into Params.
func (o queryOptions) request() (api.QueryRequest, error) {
	req := o.QueryRequest
	switch {
	case req.Plugin != "" && req.Kind != "" && req.Plugin != req.Kind:
		return req, usageError("--plugin %s and --kind %s differ; --kind is the older name of --plugin, give only --plugin", req.Plugin, req.Kind)
	case req.Plugin == "" && req.Kind == "":
		return req, usageError("choose the query's plugin with --plugin, such as --plugin %s or --plugin %s (`xnode plugin list` shows the installed ones)",
			api.KindOverlap, api.KindMatch)
	case req.Dataset == "":
		return req, usageError("name this node's dataset with --dataset")
	case len(req.Peers) == 0:
		return req, usageError("name the peers with --peers (`xnode peers list` shows them)")
	}
	if req.Plugin == "" {
		req.Plugin = req.Kind
	}
	req.Kind = ""
	params, err := parseParams(o.Param)
	if err != nil {
		return req, err
	}
	if len(params) > 0 {
		req.Params = params
	}
	return req, nil
}

// parseParams parses KEY=VALUE flags; a key given twice or without "=" is a
// usage error.
func parseParams(flags []string) (map[string]string, error) {
	params := map[string]string{}
	for _, kv := range flags {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, usageError("--param %q: want KEY=VALUE, such as --param filter=segment:retail (`xnode plugin list` shows each plugin's parameters)", kv)
		}
		if _, dup := params[k]; dup {
			return nil, usageError("--param %s is given twice; give each parameter once", k)
		}
		params[k] = v
	}
	return params, nil
}

func newQueryRunCmd() *cobra.Command {
	var (
		o      queryOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "run --plugin NAME [--param KEY=VALUE …] --dataset NAME --peers P1[,P2]",
		Short: "Submit a query, wait for it and print its result",
		Long: `Submits a query to this node, follows it through proposed, awaiting-approval
and running until it ends, and prints the result. While peers have not all
approved, their answers are printed on stderr as they change. With --json the
last line of output is the query as one JSON object.

Exits 1 if the query failed, was denied (the peer's rule and reason are
printed), expired before every peer approved it, or did not end within
--timeout (it goes on in the node; follow it with ` + "`xnode query status ID`" + `).

--kind is the older name of --plugin and still accepted; giving both with
different values is an error.`,
		Example: `  xnode query run --plugin overlap --dataset loans --peers bank-b
  xnode query run --plugin overlap --param filter=segment:retail --dataset loans --peers bank-b
  xnode query run --plugin match --dataset loans --peers bank-b,bank-c --peer-dataset risk --json`,
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
	req, err := o.request()
	if err != nil {
		return err
	}
	if o.Timeout <= 0 {
		return usageError("--timeout %s: want a positive duration such as 10m", o.Timeout)
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	q, err := c.SubmitQuery(ctx, req)
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

// waitQuery polls q until its status is final. Unless --json, it prints
// the status and the peers' answers on stderr each time they change before
// the query runs, and a progress bar while it runs if stderr is a terminal.
// It returns the last state seen.
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
	shown := ""
	for !api.Finished(q.Status) {
		if line := approvalLine(q); !o.JSON && line != shown && q.Status != api.StatusRunning {
			if bar != nil {
				_ = bar.Clear()
			}
			fmt.Fprintln(o.Stderr, line)
			shown = line
		}
		if bar != nil && q.Status != api.StatusRunning {
			bar.Describe(fmt.Sprintf("query %s: %s", q.ID, q.Status))
		}
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
	status := q.Status
	if len(q.PeerStates) > 0 && q.Status != api.StatusRunning {
		status += " (" + peerStates(q.PeerStates) + ")"
	}
	return &exitError{code: exitFailure, err: fmt.Errorf("query %s is still %s: %s; it goes on in the node, follow it with `xnode query status %s`",
		q.ID, status, why, q.ID)}
}

// approvalLine is a query's status and its peers' answers on one line,
// such as "query q1: awaiting-approval (beta approved, gamma awaiting-approval)".
func approvalLine(q api.Query) string {
	line := fmt.Sprintf("query %s: %s", q.ID, q.Status)
	if len(q.PeerStates) > 0 {
		line += " (" + peerStates(q.PeerStates) + ")"
	}
	return line
}

// peerStates renders peer answers as "beta approved, gamma denied by rule
// min-set-size: set too small".
func peerStates(ps []api.PeerState) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Peer + " " + p.Status
		if p.Rule != "" && p.Status == api.StatusDenied {
			parts[i] += " by rule " + p.Rule
		} else if p.Rule != "" {
			parts[i] += " (" + p.Rule + ")"
		}
		if p.Reason != "" {
			parts[i] += ": " + p.Reason
		}
	}
	return strings.Join(parts, ", ")
}

// queryFailed returns an exit error for a query that ended failed, denied
// or expired, with the reason.
func queryFailed(q api.Query) error {
	var err error
	switch q.Status {
	case api.StatusFailed:
		msg := q.Error
		if msg == "" {
			msg = "no reason given"
		}
		err = fmt.Errorf("query %s failed: %s; check the peers with `xnode peers list` and the node's log, then submit it again", q.ID, msg)
	case api.StatusDenied:
		var denials []string
		for _, p := range q.PeerStates {
			if p.Status != api.StatusDenied {
				continue
			}
			d := p.Peer
			if p.Rule != "" {
				d += " (rule " + p.Rule + ")"
			}
			if p.Reason != "" {
				d += ": " + p.Reason
			}
			denials = append(denials, d)
		}
		if len(denials) == 0 {
			msg := q.Error
			if msg == "" {
				msg = "no reason given"
			}
			denials = append(denials, msg)
		}
		err = fmt.Errorf("query %s was denied by %s; change the query or ask the peer to change its policy, then submit it again",
			q.ID, strings.Join(denials, "; "))
	case api.StatusExpired:
		var waiting []string
		for _, p := range q.PeerStates {
			if p.Status == api.StatusProposed || p.Status == api.StatusAwaitingApproval {
				waiting = append(waiting, p.Peer)
			}
		}
		why := "not every peer approved it in time"
		if len(waiting) > 0 {
			why = "no approval came in time from " + strings.Join(waiting, ", ")
		}
		if q.Error != "" {
			why += " (" + q.Error + ")"
		}
		err = fmt.Errorf("query %s expired: %s; ask the peers to approve with `xnode query approve %s`, or submit it again", q.ID, why, q.ID)
	default:
		return nil
	}
	return &exitError{code: exitFailure, err: err}
}

func newQuerySubmitCmd() *cobra.Command {
	var (
		o      queryOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "submit --plugin NAME [--param KEY=VALUE …] --dataset NAME --peers P1[,P2]",
		Short: "Submit a query and print its ID without waiting",
		Long: `Submits a query and prints its ID; follow it with ` + "`xnode query status ID`" + `.
--kind is the older name of --plugin and still accepted.`,
		Example: `  id=$(xnode query submit --plugin overlap --dataset loans --peers bank-b)
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
	req, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	q, err := c.SubmitQuery(ctx, req)
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
	case api.StatusAwaitingApproval:
		if q.Role == roleResponder {
			fmt.Fprintf(o.Stdout, "\nit waits for this node's approval: `xnode query approve %s` or `xnode query deny %s --reason TEXT`\n", q.ID, q.ID)
		}
	}
	return queryFailed(q)
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
	if !api.Finished(q.Status) {
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
	return printQueries(o, qs, "no queries yet; run one with `xnode query run --plugin overlap --dataset NAME --peers PEER`", printQueryTable)
}

// printQueries prints qs as a JSON array, the line none when there are
// none, or a table.
func printQueries(o queryOptions, qs []api.Query, none string, table func(io.Writer, []api.Query) error) error {
	if o.JSON {
		if qs == nil {
			qs = []api.Query{}
		}
		return printJSON(o.Stdout, qs)
	}
	if len(qs) == 0 {
		fmt.Fprintln(o.Stdout, none)
		return nil
	}
	return table(o.Stdout, qs)
}

// printQueryTable prints one line per query with its plugin, status and
// each peer's answer.
func printQueryTable(w io.Writer, qs []api.Query) error {
	tw := newTable(w)
	row(tw, "ID", "PLUGIN", "ROLE", "STATUS", "DATASET", "PEERS", "SHARED", "CREATED")
	for _, q := range qs {
		shared := "-"
		if q.Status == api.StatusDone && q.Role != roleResponder {
			shared = fmt.Sprint(q.Summary.IntersectionSize)
		}
		row(tw, q.ID, pluginName(q), orDash(q.Role), q.Status, q.Dataset, peerCell(q), shared, fmtTime(q.Created))
	}
	return tw.Flush()
}

// pluginName is the query's plugin name, with its version if known.
func pluginName(q api.Query) string {
	switch {
	case q.Plugin != nil && q.Plugin.Version != "":
		return q.Plugin.Name + "@" + q.Plugin.Version
	case q.Plugin != nil:
		return q.Plugin.Name
	}
	return orDash(q.Kind)
}

// peerCell lists a query's peers, each with its answer when known:
// "beta:approved,gamma:awaiting-approval".
func peerCell(q api.Query) string {
	if len(q.PeerStates) == 0 {
		return listOr(q.Peers, "-")
	}
	parts := make([]string, len(q.PeerStates))
	for i, p := range q.PeerStates {
		parts[i] = p.Peer + ":" + p.Status
	}
	return strings.Join(parts, ",")
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
	plugin := pluginName(q)
	if q.Plugin != nil && q.Plugin.Digest != "" {
		plugin += " (" + shortDigest(q.Plugin.Digest) + ")"
	}
	row(tw, "plugin", plugin)
	if len(q.Params) > 0 {
		row(tw, "params", formatParams(q.Params))
	}
	if q.Protocol != "" {
		row(tw, "protocol", q.Protocol)
	}
	if q.Querier != "" && q.Role == roleResponder {
		row(tw, "querier", q.Querier)
	}
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
	for i, p := range q.PeerStates {
		label := ""
		if i == 0 {
			label = "peer states"
		}
		row(tw, label, peerStates([]api.PeerState{p}))
	}
	if !q.Expires.IsZero() && (q.Status == api.StatusProposed || q.Status == api.StatusAwaitingApproval) {
		row(tw, "expires", fmtTime(q.Expires))
	}
	if q.Suite != "" {
		row(tw, "suite", q.Suite)
	}
	if p := q.Progress; p != nil && !api.Finished(q.Status) {
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
		if len(q.Summary.Plugin) > 0 {
			row(tw, "plugin summary", formatParams(q.Summary.Plugin))
		}
	}
	row(tw, "created", fmtTime(q.Created))
	if !q.Finished.IsZero() {
		row(tw, "finished", fmt.Sprintf("%s (%s)", fmtTime(q.Finished), q.Finished.Sub(q.Created).Round(time.Millisecond)))
	}
	return tw.Flush()
}

// formatParams renders a map as "k1=v1 k2=v2", sorted by key.
func formatParams(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

// shortDigest shortens "sha256:<64 hex>" to "sha256:<12 hex>".
func shortDigest(d string) string {
	if h, ok := strings.CutPrefix(d, "sha256:"); ok && len(h) > 12 {
		return "sha256:" + h[:12]
	}
	return d
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
