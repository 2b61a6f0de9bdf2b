package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"xnode/node/api"
)

func newPeersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List and add the consortium members this node talks to",
	}
	cmd.AddCommand(newPeersListCmd(), newPeersAddCmd())
	return cmd
}

type peersOptions struct {
	clientOptions
}

func newPeersListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List configured and connected peers with their certificate status",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPeersList(cmd.Context(), peersOptions{clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func runPeersList(ctx context.Context, o peersOptions, _ []string) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	peers, err := c.Peers(ctx)
	if err != nil {
		return err
	}
	if o.JSON {
		if peers == nil {
			peers = []api.PeerInfo{}
		}
		return printJSON(o.Stdout, peers)
	}
	if len(peers) == 0 {
		fmt.Fprintln(o.Stdout, "no peers; add one with `xnode peers add NAME MULTIADDR`")
		return nil
	}
	tw := newTable(o.Stdout)
	row(tw, "NAME", "PEER ID", "ORG", "CONNECTED", "VERIFIED", "EXPIRES", "ADDRESS", "PROBLEM")
	for _, p := range peers {
		expires := "-"
		if !p.Expires.IsZero() {
			expires = p.Expires.Format("2006-01-02")
		}
		row(tw, p.Name, p.PeerID, orDash(p.Org), yesNo(p.Connected), yesNo(p.Verified), expires, orDash(p.Addr), orDash(p.Error))
	}
	return tw.Flush()
}

func newPeersAddCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "add NAME MULTIADDR",
		Short: "Add a peer to config.toml and dial it",
		Long: `Adds a consortium member to this node's config and dials it. MULTIADDR is
the address the peer's ` + "`xnode id`" + ` prints, ending in /p2p/<peer ID>. The
connection is refused unless the peer holds a valid certificate of the same
consortium.`,
		Example: `  xnode peers add bank-b /ip4/10.0.0.2/tcp/7400/p2p/12D3KooW...`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPeersAdd(cmd.Context(), peersOptions{clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the added peer as JSON")
	return cmd
}

func runPeersAdd(ctx context.Context, o peersOptions, args []string) error {
	if len(args) != 2 {
		return usageError("peers add wants NAME MULTIADDR")
	}
	name, addr := args[0], args[1]
	if !strings.HasPrefix(addr, "/") || !strings.Contains(addr, "/p2p/") {
		return usageError("%q is not a multiaddr with a peer ID; want one like /ip4/10.0.0.2/tcp/7400/p2p/12D3KooW… (the peer's `xnode id` prints it)", addr)
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	p, err := c.AddPeer(ctx, api.AddPeerRequest{Name: name, Addr: addr})
	if err != nil {
		return err
	}
	if o.JSON {
		return printJSON(o.Stdout, p)
	}
	fmt.Fprintf(o.Stdout, "added peer %s (%s)\n", p.Name, p.PeerID)
	switch {
	case p.Connected && p.Verified:
		fmt.Fprintln(o.Stdout, "connected; its membership certificate is valid")
	case p.Error != "":
		fmt.Fprintf(o.Stdout, "not connected yet: %s\nthe node keeps dialing; check with `xnode peers list`\n", p.Error)
	default:
		fmt.Fprintln(o.Stdout, "dialing; check with `xnode peers list`")
	}
	return nil
}
