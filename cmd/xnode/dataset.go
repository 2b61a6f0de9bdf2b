package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"xnode/node/api"
	"xnode/node/datasets"
)

func newDatasetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "dataset",
		Aliases: []string{"datasets"},
		Short:   "Import, list, show and drop this node's datasets",
	}
	cmd.AddCommand(newDatasetImportCmd(), newDatasetListCmd(), newDatasetShowCmd(), newDatasetDropCmd())
	return cmd
}

type datasetImportOptions struct {
	clientOptions
	api.ImportRequest
}

// shownRowErrors is how many invalid rows the human output lists.
const shownRowErrors = 10

var (
	idKinds   = []string{"cn_id", "phone", "email", "raw"}
	encodings = []string{"utf8", "gbk"}
	formats   = []string{"csv", "jsonl"}
)

func newDatasetImportCmd() *cobra.Command {
	var (
		o      datasetImportOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "import --name NAME --file PATH --id-column COL",
		Short: "Import a CSV or JSON Lines file as a new version of a dataset",
		Long: `Imports a file into the running node as a new, immutable version of the
dataset NAME. The node reads the file itself, so PATH must be readable by the
node's user. Identifiers are normalised by --id-kind; several --id-column
values make a composite key. Bad rows are skipped and reported (the first ones
with their line numbers) unless --strict, which refuses the whole file.`,
		Example: `  xnode dataset import --name loans --file loans.csv --id-column resident_id --id-kind cn_id \
      --value-columns amount:decimal(2),segment --label-columns risk_flag
  xnode dataset import --name contacts --file contacts.jsonl --id-column phone --id-kind phone --strict
  xnode dataset import --name people --file people.csv --id-column name,birth_date --id-kind raw --encoding gbk`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.clientOptions = clientOptionsFrom(cmd, asJSON)
			return runDatasetImport(cmd.Context(), o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "dataset name (required)")
	f.StringVar(&o.File, "file", "", "path of the file to import (required)")
	f.StringSliceVar(&o.IDColumns, "id-column", nil, "identifier column(s); several make a composite key (required)")
	f.StringVar(&o.IDKind, "id-kind", "raw", "identifier normaliser: cn_id, phone, email or raw")
	f.StringSliceVar(&o.ValueColumns, "value-columns", nil, "typed value columns: name or name:integer|decimal(N)|decimal|category")
	f.StringSliceVar(&o.LabelColumns, "label-columns", nil, "label columns stored as text (risk flag, level, date)")
	f.StringVar(&o.Encoding, "encoding", "utf8", "text encoding of a CSV file: utf8 or gbk")
	f.StringVar(&o.Format, "format", "", "csv or jsonl (default: from the file's extension)")
	f.BoolVar(&o.Strict, "strict", false, "refuse the whole file at its first bad row")
	f.BoolVar(&asJSON, "json", false, "print the import report as JSON")
	return cmd
}

func runDatasetImport(ctx context.Context, o datasetImportOptions, _ []string) error {
	switch {
	case o.Name == "":
		return usageError("name the dataset with --name")
	case o.File == "":
		return usageError("name the file to import with --file")
	case len(o.IDColumns) == 0:
		return usageError("name the identifier column(s) with --id-column")
	case o.IDKind != "" && !slices.Contains(idKinds, o.IDKind):
		return usageError("--id-kind %q: want one of %s", o.IDKind, listOr(idKinds, ""))
	case o.Encoding != "" && !slices.Contains(encodings, o.Encoding):
		return usageError("--encoding %q: want utf8 or gbk", o.Encoding)
	case o.Format != "" && !slices.Contains(formats, o.Format):
		return usageError("--format %q: want csv or jsonl", o.Format)
	}
	if err := datasets.ValidName(o.Name); err != nil {
		return usageError("%v", err)
	}
	abs, err := filepath.Abs(o.File)
	if err != nil {
		return fmt.Errorf("failed to resolve %s: %w", o.File, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("cannot import %s: %w", abs, err)
	}
	if st.IsDir() {
		return fmt.Errorf("cannot import %s: it is a directory; name a CSV or JSON Lines file", abs)
	}
	req := o.ImportRequest
	req.File = abs

	c, err := o.client()
	if err != nil {
		return err
	}
	var (
		bar      *progressbar.ProgressBar
		progress func(done, total int64)
	)
	if isTerminal(o.Stderr) {
		progress = func(done, total int64) {
			if bar == nil {
				if total <= 0 {
					total = -1
				}
				bar = newBar(o.Stderr, total, "importing "+o.Name, true)
			}
			_ = bar.Set64(done)
		}
	}
	rep, err := c.ImportDataset(ctx, req, progress)
	if bar != nil {
		_ = bar.Finish()
	}
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return fmt.Errorf("import of %s into %q failed: %w", abs, o.Name, err)
	}
	if err != nil {
		return err
	}
	if o.JSON {
		return printJSON(o.Stdout, rep)
	}
	fmt.Fprintf(o.Stdout, "imported %s into dataset %q version %d\n", orDash(rep.Source), rep.Name, rep.Version)
	tw := newTable(o.Stdout)
	row(tw, "  rows read", rep.RowsRead)
	row(tw, "  imported", rep.Imported)
	row(tw, "  duplicates", rep.Duplicates)
	row(tw, "  invalid", rep.Invalid)
	if len(rep.Columns) > 0 {
		cols := make([]string, len(rep.Columns))
		for i, col := range rep.Columns {
			cols[i] = col.String()
		}
		row(tw, "  columns", listOr(cols, "-"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Errors) > 0 {
		fmt.Fprintln(o.Stdout, "first invalid rows:")
		for _, e := range rep.Errors[:min(len(rep.Errors), shownRowErrors)] {
			fmt.Fprintf(o.Stdout, "  %s\n", e)
		}
		if more := rep.Invalid - int64(min(len(rep.Errors), shownRowErrors)); more > 0 {
			fmt.Fprintf(o.Stdout, "  … and %d more (--json lists the first %d)\n", more, datasets.MaxReportedErrors)
		}
	}
	if rep.Duplicates > 0 {
		fmt.Fprintf(o.Stdout, "%d rows repeated an earlier identifier; the first row of each was kept\n", rep.Duplicates)
	}
	return nil
}

type datasetOptions struct {
	clientOptions
}

func newDatasetListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the latest version of every dataset",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDatasetList(cmd.Context(), datasetOptions{clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func runDatasetList(ctx context.Context, o datasetOptions, _ []string) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	ds, err := c.ListDatasets(ctx)
	if err != nil {
		return err
	}
	if o.JSON {
		if ds == nil {
			ds = []datasets.Info{}
		}
		return printJSON(o.Stdout, ds)
	}
	if len(ds) == 0 {
		fmt.Fprintln(o.Stdout, "no datasets; import one with `xnode dataset import --name NAME --file PATH --id-column COL`")
		return nil
	}
	tw := newTable(o.Stdout)
	row(tw, "NAME", "VERSION", "ROWS", "ID KIND", "ID COLUMNS", "COLUMNS", "SOURCE", "CREATED")
	for _, d := range ds {
		row(tw, d.Name, d.Version, d.Rows, orDash(d.IDKind), listOr(d.IDColumns, "-"), columnNames(d.Columns), orDash(d.Source), fmtTime(d.Created))
	}
	return tw.Flush()
}

func columnNames(cols []datasets.Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return listOr(names, "-")
}

func newDatasetShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a dataset's latest version, its columns and its history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDatasetShow(cmd.Context(), datasetOptions{clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func runDatasetShow(ctx context.Context, o datasetOptions, args []string) error {
	if len(args) != 1 {
		return usageError("dataset show wants one NAME")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	d, err := c.ShowDataset(ctx, args[0])
	if err != nil {
		return err
	}
	if o.JSON {
		return printJSON(o.Stdout, d)
	}
	tw := newTable(o.Stdout)
	row(tw, "name", d.Name)
	row(tw, "version", d.Version)
	row(tw, "created", fmtTime(d.Created))
	row(tw, "rows", d.Rows)
	row(tw, "identifier", fmt.Sprintf("%s (%s)", listOr(d.IDColumns, "-"), orDash(d.IDKind)))
	row(tw, "source", fmt.Sprintf("%s (%s, %s)", orDash(d.Source), orDash(string(d.Format)), orDash(d.Encoding)))
	row(tw, "import", fmt.Sprintf("%d read, %d duplicates, %d invalid", d.RowsRead, d.Duplicates, d.Invalid))
	for i, col := range d.Columns {
		label := ""
		if i == 0 {
			label = "columns"
		}
		note := ""
		if col.Inferred {
			note = " (inferred)"
		}
		row(tw, label, col.String()+note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.Versions) > 1 {
		fmt.Fprintln(o.Stdout, "\nversions:")
		tw = newTable(o.Stdout)
		row(tw, "VERSION", "ROWS", "SOURCE", "CREATED")
		for _, v := range d.Versions {
			row(tw, v.Version, v.Rows, orDash(v.Source), fmtTime(v.Created))
		}
		return tw.Flush()
	}
	return nil
}

func newDatasetDropCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "drop NAME",
		Short: "Drop every version of a dataset",
		Long: `Removes every version of the dataset NAME from the node's store. Queries
that already ran keep their records and results.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDatasetDrop(cmd.Context(), datasetOptions{clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func runDatasetDrop(ctx context.Context, o datasetOptions, args []string) error {
	if len(args) != 1 {
		return usageError("dataset drop wants one NAME")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	res, err := c.DropDataset(ctx, args[0])
	if err != nil {
		return err
	}
	if o.JSON {
		return printJSON(o.Stdout, res)
	}
	fmt.Fprintf(o.Stdout, "dropped dataset %q (%d versions)\n", res.Name, res.Versions)
	return nil
}
