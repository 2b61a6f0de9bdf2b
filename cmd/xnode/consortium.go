package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"xnode/node/config"
	"xnode/node/identity"
	"xnode/node/membership"
)

// dataDirFrom makes a directory flag's value absolute.
func dataDirFrom(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

func runConsortiumInit(_ context.Context, o consortiumOptions, w io.Writer) error {
	if o.Name == "" {
		return usageError("name the consortium with --name")
	}
	if _, err := os.Stat(filepath.Join(o.Dir, membership.RootKeyFile)); err == nil {
		return fmt.Errorf("%s already holds a consortium root key; use it, or pick another --dir", o.Dir)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("failed to create %s: %w", o.Dir, err)
	}
	c, err := membership.Init(o.Dir, o.Name)
	if err != nil {
		return err
	}
	return printJSONOrTable(w, o.JSON, c, [][2]string{
		{"consortium", c.Name},
		{"id", c.ID},
		{"root key", filepath.Join(o.Dir, membership.RootKeyFile) + " (keep it offline; it signs every membership)"},
		{"next", "xnode consortium admit --dir " + o.Dir + " --node NODE_DIR"},
	})
}

// parseExpiry reads --expires: a duration from now or a date.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, usageError("--expires %s is not in the future", s)
		}
		return now.Add(d), nil
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			if !t.After(now) {
				return time.Time{}, usageError("--expires %s is not in the future", s)
			}
			return t, nil
		}
	}
	return time.Time{}, usageError("--expires %q: want a duration such as 8760h or a date such as 2027-12-31", s)
}

func runConsortiumAdmit(_ context.Context, o consortiumOptions, w io.Writer) error {
	if o.Node == "" {
		return usageError("name the node's data dir with --node")
	}
	nodeDir := dataDirFrom(o.Node)
	expires, err := parseExpiry(o.Expires, time.Now())
	if err != nil {
		return err
	}
	id, err := identity.Load(nodeDir)
	if err != nil {
		return fmt.Errorf("failed to read the node's identity in %s: %w (create the node with `xnode init --dir %s`)", nodeDir, err, nodeDir)
	}
	cfg, err := config.Load(nodeDir)
	if err != nil {
		return err
	}
	org := o.Org
	if org == "" {
		org = cfg.Name
	}
	roles := o.Roles
	if len(roles) == 0 {
		roles = membership.DefaultRoles()
	}
	cert, err := membership.Admit(o.Dir, id.ID(), cfg.Name, org, roles, expires)
	if err != nil {
		return err
	}
	root, err := membership.OpenRoot(o.Dir)
	if err != nil {
		return err
	}
	rl, err := membership.LoadRevocations(filepath.Join(o.Dir, membership.RevocationsFile))
	if err != nil {
		return err
	}
	if err := membership.WriteNodeFiles(nodeDir, root.Consortium, cert, rl); err != nil {
		return err
	}
	return printJSONOrTable(w, o.JSON, cert, [][2]string{
		{"admitted", cert.Name + " (" + cert.Org + ")"},
		{"peer ID", cert.PeerID.String()},
		{"roles", joinOr(cert.Roles, "-")},
		{"expires", cert.NotAfter.Format(time.RFC3339)},
		{"certificate", filepath.Join(nodeDir, membership.CertFile)},
	})
}

func runConsortiumRevoke(_ context.Context, o consortiumOptions, w io.Writer) error {
	var target peer.ID
	switch {
	case o.Peer != "" && o.Node != "":
		return usageError("give --node or --peer, not both")
	case o.Peer != "":
		p, err := peer.Decode(o.Peer)
		if err != nil {
			return usageError("--peer %q is not a peer ID: %v", o.Peer, err)
		}
		target = p
	case o.Node != "":
		id, err := identity.Load(dataDirFrom(o.Node))
		if err != nil {
			return fmt.Errorf("failed to read the node's identity: %w", err)
		}
		target = id.ID()
	default:
		return usageError("%v", errNoTarget)
	}
	rl, err := membership.Revoke(o.Dir, target, o.Reason)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(o.Dir, membership.RevocationsFile))
	if err != nil {
		return err
	}
	for _, d := range o.Distribute {
		dst := filepath.Join(dataDirFrom(d), membership.RevocationsFile)
		if err := config.WriteFileAtomic(dst, data, 0o644); err != nil {
			return fmt.Errorf("revoked, but failed to distribute the list to %s: %w", d, err)
		}
	}
	return printJSONOrTable(w, o.JSON, rl, [][2]string{
		{"revoked", target.String()},
		{"list version", fmt.Sprint(rl.Version)},
		{"list", filepath.Join(o.Dir, membership.RevocationsFile)},
		{"distributed to", joinOr(o.Distribute, "none: copy the list into every node's data dir")},
	})
}
