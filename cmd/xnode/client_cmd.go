package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"xnode/node/api"
)

// addClientCommands registers the commands that talk to a running node
// through its local API: id, peers, dataset, query, plugin and audit.
func addClientCommands(root *cobra.Command) {
	if root.PersistentFlags().Lookup(dirFlag) == nil {
		addDirFlag(root)
	}
	root.AddCommand(newIDCmd(), newPeersCmd(), newDatasetCmd(), newQueryCmd(), newPluginCmd(), newAuditCmd())
}

// clientOptions are what every client command needs.
type clientOptions struct {
	Dir    string // the node's data dir: its config.toml names the API address
	JSON   bool   // print JSON instead of tables
	Stdout io.Writer
	Stderr io.Writer
}

// clientOptionsFrom fills the options a command's flags do not set.
func clientOptionsFrom(cmd *cobra.Command, json bool) clientOptions {
	return clientOptions{Dir: dataDir(cmd), JSON: json, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
}

func (o clientOptions) client() (*api.Client, error) {
	return api.ClientForDir(o.Dir)
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// newTable returns a tabwriter for aligned columns; call Flush.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes cells separated by tabs.
func row(tw io.Writer, cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, c)
	}
	fmt.Fprintln(tw)
}

func listOr(v []string, none string) string {
	if len(v) == 0 {
		return none
	}
	return strings.Join(v, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// newBar returns a progress bar on w, cleared when it finishes.
func newBar(w io.Writer, total int64, desc string, bytes bool) *progressbar.ProgressBar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	}
	return progressbar.NewOptions64(total, opts...)
}
