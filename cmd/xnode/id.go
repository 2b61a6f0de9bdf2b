package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

type idOptions struct {
	clientOptions
}

func newIDCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Show this node's name, peer ID, addresses and consortium",
		Long: `Asks the running node for its identity: the name and peer ID other members
know it by, the addresses it listens on, and the consortium it was admitted to.
Give peers the address and peer ID so they can add this node with
` + "`xnode peers add`" + `.`,
		Example: `  xnode id
  xnode id --dir /var/lib/xnode --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runID(cmd.Context(), idOptions{clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func runID(ctx context.Context, o idOptions, _ []string) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	info, err := c.NodeInfo(ctx)
	if err != nil {
		return err
	}
	if o.JSON {
		return printJSON(o.Stdout, info)
	}
	tw := newTable(o.Stdout)
	row(tw, "name", info.Name)
	row(tw, "peer ID", info.PeerID)
	if len(info.Addrs) == 0 {
		row(tw, "addresses", "none (check `listen` in config.toml)")
	}
	for i, a := range info.Addrs {
		label := ""
		if i == 0 {
			label = "addresses"
		}
		if !strings.Contains(a, "/p2p/") {
			a += "/p2p/" + info.PeerID
		}
		row(tw, label, a)
	}
	consortium := info.Consortium
	if consortium == "" {
		consortium = "not admitted yet; ask the consortium operator to run `xnode consortium admit`"
	}
	row(tw, "consortium", consortium)
	if info.Org != "" {
		row(tw, "organisation", info.Org)
	}
	if len(info.Roles) > 0 {
		row(tw, "roles", listOr(info.Roles, "-"))
	}
	row(tw, "local API", info.API)
	row(tw, "version", orDash(info.Version))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("failed to write: %w", err)
	}
	return nil
}
