package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"xnode/node"
)

type initOptions struct {
	Dir     string
	Name    string
	P2PPort int
	API     string
	JSON    bool
}

func newInitCmd() *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a node data directory: identity key, config, API token, store",
		Example: `  xnode init --dir /var/lib/xnode --name bank-a
  xnode init --dir ./bank-b --name bank-b --p2p-port 7410 --api 127.0.0.1:7411`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Dir = dataDir(cmd)
			return runInit(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "the node's name in the consortium (default: host name)")
	f.IntVar(&o.P2PPort, "p2p-port", 0, "TCP and QUIC port for peers (default 7400)")
	f.StringVar(&o.API, "api", "", "host:port of the local API (default 127.0.0.1:7401)")
	f.BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}

func runInit(_ context.Context, o initOptions, w io.Writer) error {
	if o.P2PPort < 0 || o.P2PPort > 65535 {
		return usageError("--p2p-port %d is not a port", o.P2PPort)
	}
	res, err := node.Init(o.Dir, node.InitOptions{Name: o.Name, P2PPort: o.P2PPort, APIAddr: o.API})
	if err != nil {
		return err
	}
	if o.JSON {
		return json.NewEncoder(w).Encode(res)
	}
	fmt.Fprintf(w, "initialised node %q in %s\npeer ID: %s\nlocal API: %s\n", res.Name, res.Dir, res.PeerID, res.API)
	fmt.Fprintf(w, "next: have the consortium operator run `xnode consortium admit --dir CONSORTIUM_DIR --node %s`, then `xnode run --dir %s`\n", res.Dir, res.Dir)
	return nil
}

type runOptions struct {
	Dir       string
	LogLevel  string
	LogFormat string
}

func newRunCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the node in the foreground until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Dir = dataDir(cmd)
			return runRun(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.LogFormat, "log-format", "text", "text or json")
	return cmd
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError("--log-format %q: want text or json", format)
}

func runRun(ctx context.Context, o runOptions, stdout, stderr io.Writer) error {
	log, err := newLogger(stderr, o.LogLevel, o.LogFormat)
	if err != nil {
		return err
	}
	n, err := node.Open(ctx, node.Options{Dir: o.Dir, Logger: log})
	if err != nil {
		return err
	}
	info, _ := n.NodeInfo(ctx)
	fmt.Fprintf(stdout, "xnode %q running: peer ID %s, local API http://%s (stop with Ctrl-C)\n", info.Name, info.PeerID, n.APIAddr())
	<-ctx.Done()
	log.Info("stopping")
	return n.Close()
}

type consortiumOptions struct {
	Dir        string
	Name       string
	Node       string
	Peer       string
	Org        string
	Roles      []string
	Expires    string
	Reason     string
	Distribute []string
	JSON       bool
}

func newConsortiumCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consortium",
		Short: "Create a consortium, admit and revoke members (run by the consortium operator)",
		Long: `The consortium operator holds the root key in a consortium directory
(--dir, separate from any node's data dir) and signs membership certificates.`,
	}
	cmd.AddCommand(newConsortiumInitCmd(), newConsortiumAdmitCmd(), newConsortiumRevokeCmd())
	return cmd
}

func consortiumDir(cmd *cobra.Command) (string, error) {
	dir, _ := cmd.Flags().GetString(dirFlag)
	if dir == "" {
		return "", usageError("name the consortium directory with --dir")
	}
	return dataDirFrom(dir), nil
}

func newConsortiumInitCmd() *cobra.Command {
	var o consortiumOptions
	cmd := &cobra.Command{
		Use:     "init",
		Short:   "Create the consortium root key",
		Example: `  xnode consortium init --dir ./pilot-consortium --name pilot`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if o.Dir, err = consortiumDir(cmd); err != nil {
				return err
			}
			return runConsortiumInit(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.Name, "name", "", "consortium name (required)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}

func newConsortiumAdmitCmd() *cobra.Command {
	var o consortiumOptions
	cmd := &cobra.Command{
		Use:   "admit",
		Short: "Sign a membership certificate into a node's data dir",
		Example: `  xnode consortium admit --dir ./pilot-consortium --node /var/lib/xnode --org "Bank A" --expires 8760h
  xnode consortium admit --dir ./pilot-consortium --node ./bank-b --roles psi,risk-list --expires 2027-12-31`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if o.Dir, err = consortiumDir(cmd); err != nil {
				return err
			}
			return runConsortiumAdmit(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Node, "node", "", "the node's data dir (required)")
	f.StringVar(&o.Org, "org", "", "the member organisation (default: the node's name)")
	f.StringSliceVar(&o.Roles, "roles", nil, "roles to grant (default: all built-in protocols)")
	f.StringVar(&o.Expires, "expires", "8760h", "validity: a duration from now (e.g. 8760h) or a date (2027-12-31)")
	f.BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}

func newConsortiumRevokeCmd() *cobra.Command {
	var o consortiumOptions
	cmd := &cobra.Command{
		Use:   "revoke",
		Short: "Revoke a member and write the signed revocation list",
		Long: `Adds the peer to the consortium's signed revocation list. Every node must load
the new list: --distribute copies it into the given node data dirs, where running
nodes pick it up within seconds and disconnect the revoked peer.`,
		Example: `  xnode consortium revoke --dir ./pilot-consortium --node ./bank-c --reason "left the pilot" --distribute ./bank-a,./bank-b`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if o.Dir, err = consortiumDir(cmd); err != nil {
				return err
			}
			return runConsortiumRevoke(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Node, "node", "", "the revoked node's data dir (or use --peer)")
	f.StringVar(&o.Peer, "peer", "", "the revoked node's peer ID")
	f.StringVar(&o.Reason, "reason", "", "why, recorded in the list")
	f.StringSliceVar(&o.Distribute, "distribute", nil, "node data dirs to copy the new list into")
	f.BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}

func printJSONOrTable(w io.Writer, asJSON bool, v any, rows [][2]string) error {
	if asJSON {
		return json.NewEncoder(w).Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}

func joinOr(v []string, none string) string {
	if len(v) == 0 {
		return none
	}
	return strings.Join(v, ",")
}

var errNoTarget = errors.New("name the node to revoke with --node DIR or --peer PEER_ID")
