package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"xnode/node/api"
)

// The commands with which an institution answers its peers' proposals.

func newQueryPendingCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "pending",
		Short: "List the queries peers proposed that wait for this node's approval",
		Long: `Lists the queries peers proposed to this node that its policy sends to a
person: approve one with ` + "`xnode query approve ID`" + ` or deny it with
` + "`xnode query deny ID --reason TEXT`" + `. A proposal nobody answers before it
expires ends expired at the querier.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runQueryPending(cmd.Context(), queryOptions{clientOptions: clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func runQueryPending(ctx context.Context, o queryOptions, _ []string) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	qs, err := c.PendingQueries(ctx)
	if err != nil {
		return err
	}
	return printQueries(o, qs, "no queries await this node's approval", printPendingTable)
}

func printPendingTable(w io.Writer, qs []api.Query) error {
	tw := newTable(w)
	row(tw, "ID", "QUERIER", "PLUGIN", "PARAMS", "DATASET", "WHY", "EXPIRES")
	for _, q := range qs {
		params := "-"
		if len(q.Params) > 0 {
			params = formatParams(q.Params)
		}
		ds := q.PeerDataset
		if ds == "" {
			ds = q.Dataset
		}
		row(tw, q.ID, orDash(q.Querier), pluginName(q), params, orDash(ds), orDash(waitingRule(q)), fmtTime(q.Expires))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\napprove with `xnode query approve ID`, deny with `xnode query deny ID --reason TEXT`")
	return nil
}

// waitingRule is the policy rule that sent q to a person, if the node said.
func waitingRule(q api.Query) string {
	for _, p := range q.PeerStates {
		if p.Status == api.StatusAwaitingApproval && p.Rule != "" {
			return p.Rule
		}
	}
	return ""
}

func newQueryApproveCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "approve ID",
		Short: "Approve a query awaiting this node's approval",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runQueryApprove(cmd.Context(), queryOptions{clientOptions: clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the query as JSON")
	return cmd
}

func runQueryApprove(ctx context.Context, o queryOptions, args []string) error {
	if len(args) != 1 || args[0] == "" {
		return usageError("name the query to approve by its ID (`xnode query pending` shows them)")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	q, err := c.ApproveQuery(ctx, args[0])
	if err != nil {
		return answerFailed("approve", args[0], err)
	}
	if o.JSON {
		return printJSON(o.Stdout, q)
	}
	fmt.Fprintf(o.Stdout, "approved query %s (%s from %s); it is now %s\n", q.ID, pluginName(q), orDash(q.Querier), q.Status)
	return nil
}

type denyOptions struct {
	queryOptions
	Reason string
}

func newQueryDenyCmd() *cobra.Command {
	var (
		o      denyOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "deny ID --reason TEXT",
		Short: "Deny a query awaiting this node's approval",
		Long: `Denies a query awaiting this node's approval. The reason is required: the
querier sees it, and the audit chains of both nodes record it.`,
		Example: `  xnode query deny 9f2c41 --reason "risk list queries need a ticket number"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.clientOptions = clientOptionsFrom(cmd, asJSON)
			return runQueryDeny(cmd.Context(), o, args)
		},
	}
	cmd.Flags().StringVar(&o.Reason, "reason", "", "why, in words the querier will read (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the query as JSON")
	return cmd
}

func runQueryDeny(ctx context.Context, o denyOptions, args []string) error {
	if len(args) != 1 || args[0] == "" {
		return usageError("name the query to deny by its ID (`xnode query pending` shows them)")
	}
	reason := strings.TrimSpace(o.Reason)
	if reason == "" {
		return usageError("say why with --reason TEXT; the querier sees it")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	q, err := c.DenyQuery(ctx, args[0], api.DenyRequest{Reason: reason})
	if err != nil {
		return answerFailed("deny", args[0], err)
	}
	if o.JSON {
		return printJSON(o.Stdout, q)
	}
	fmt.Fprintf(o.Stdout, "denied query %s (%s from %s): %s\n", q.ID, pluginName(q), orDash(q.Querier), reason)
	return nil
}

// answerFailed explains an error of approve or deny.
func answerFailed(verb, id string, err error) error {
	return fmt.Errorf("failed to %s query %s: %w (`xnode query pending` lists the queries awaiting approval)", verb, id, err)
}
