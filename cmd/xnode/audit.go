package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"xnode/node/api"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, verify and export this node's audit chain",
		Long: `Every proposal, approval, denial, run and result, every import, policy change
and membership event is an entry of the node's audit chain: each entry is
hash-linked to the previous one and signed with the node's key, so an entry
edited or removed afterwards is detected by ` + "`xnode audit verify`" + `.`,
	}
	cmd.AddCommand(newAuditShowCmd(), newAuditVerifyCmd(), newAuditExportCmd())
	return cmd
}

type auditOptions struct {
	clientOptions
	api.AuditFilter
	// Format and Out are for export.
	Format string
	Out    string
}

func newAuditShowCmd() *cobra.Command {
	var (
		o      auditOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show [--query ID] [--kind KIND] [--limit N]",
		Short: "List audit entries, oldest first",
		Example: `  xnode audit show --query 9f2c41
  xnode audit show --kind denial --limit 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.clientOptions = clientOptionsFrom(cmd, asJSON)
			return runAuditShow(cmd.Context(), o, args)
		},
	}
	cmd.Flags().StringVar(&o.QueryID, "query", "", "only the entries of this query ID")
	cmd.Flags().StringVar(&o.Kind, "kind", "", "only entries of this kind (proposal, approval, denial, run, result, import, …)")
	cmd.Flags().IntVar(&o.Limit, "limit", 0, "only the last N matching entries (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func runAuditShow(ctx context.Context, o auditOptions, _ []string) error {
	if o.Limit < 0 {
		return usageError("--limit %d: want a number of entries, 0 for all", o.Limit)
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	es, err := c.Audit(ctx, o.AuditFilter)
	if err != nil {
		return err
	}
	if o.JSON {
		if es == nil {
			es = []api.AuditEntry{}
		}
		return printJSON(o.Stdout, es)
	}
	if len(es) == 0 {
		fmt.Fprintln(o.Stdout, "no audit entries match")
		return nil
	}
	tw := newTable(o.Stdout)
	row(tw, "SEQ", "TIME", "KIND", "QUERY", "ACTOR", "DETAILS")
	for _, e := range es {
		row(tw, e.Seq, fmtTime(e.Time), e.Kind, orDash(e.QueryID), orDash(e.Actor), compactJSON(e.Details))
	}
	return tw.Flush()
}

// compactJSON prints raw JSON on one line, or - if there is none.
func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "-"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func newAuditVerifyCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every entry's hash link and signature",
		Long: `Checks that every entry of the audit chain links to the one before it and
carries a valid signature of this node's key. Exits 1 if not, naming the first
bad entry and its problem (with --json, after printing the report).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAuditVerify(cmd.Context(), auditOptions{clientOptions: clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func runAuditVerify(ctx context.Context, o auditOptions, _ []string) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	rep, err := c.VerifyAudit(ctx)
	if err != nil {
		return fmt.Errorf("failed to verify the audit chain: %w", err)
	}
	if o.JSON {
		if err := printJSON(o.Stdout, rep); err != nil {
			return err
		}
	} else if rep.OK {
		head := ""
		if rep.Head != "" {
			head = ", head " + rep.Head
		}
		fmt.Fprintf(o.Stdout, "audit chain OK: %d entries verified%s\n", rep.Entries, head)
	}
	if rep.OK {
		return nil
	}
	problem := rep.Problem
	if problem == "" {
		problem = "it does not verify"
	}
	if rep.Detail != "" {
		problem += " (" + rep.Detail + ")"
	}
	return &exitError{code: exitFailure, err: fmt.Errorf("the audit chain is broken at entry %d of %d: %s; the entries before it verify; "+
		"keep the data dir as it is for investigation and compare with `xnode audit show` and an earlier `xnode audit export`",
		rep.FirstBadSeq, rep.Entries, problem)}
}

func newAuditExportCmd() *cobra.Command {
	var o auditOptions
	cmd := &cobra.Command{
		Use:   "export [--format jsonl] [--out FILE]",
		Short: "Export the whole audit chain as JSON Lines",
		Long: `Writes every audit entry, oldest first, one JSON object per line, to stdout
or to --out FILE. A file is written whole or not at all: the export goes to a
temporary file beside it, which replaces FILE only when the export completed.`,
		Example: `  xnode audit export --out audit-$(date +%F).jsonl`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.clientOptions = clientOptionsFrom(cmd, false)
			return runAuditExport(cmd.Context(), o, args)
		},
	}
	cmd.Flags().StringVar(&o.Format, "format", "jsonl", "output format; only jsonl")
	cmd.Flags().StringVarP(&o.Out, "out", "o", "", "write to this file instead of stdout")
	return cmd
}

func runAuditExport(ctx context.Context, o auditOptions, _ []string) error {
	if o.Format != "" && o.Format != "jsonl" {
		return usageError("--format %s: the audit chain exports only as jsonl", o.Format)
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	if o.Out == "" || o.Out == "-" {
		return c.ExportAudit(ctx, o.Stdout)
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.Out), "."+filepath.Base(o.Out)+".*.tmp")
	if err != nil {
		return fmt.Errorf("failed to create the export file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	cw := &countingWriter{w: tmp}
	err = c.ExportAudit(ctx, cw)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("failed to export the audit chain to %s (nothing was written there): %w", o.Out, err)
	}
	if err := os.Rename(tmp.Name(), o.Out); err != nil {
		return fmt.Errorf("failed to write %s: %w", o.Out, err)
	}
	fmt.Fprintf(o.Stderr, "exported %d audit entries to %s\n", cw.lines, o.Out)
	return nil
}

// countingWriter counts the lines written through it.
type countingWriter struct {
	w     io.Writer
	lines int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.lines += bytes.Count(p[:n], []byte{'\n'})
	return n, err
}
