// Package registry keeps the query plugins a node has installed and pinned:
// name, version, protocol and the SHA-256 digest of the executable. Every
// launch checks the digest again (go-plugin SecureConfig), so a binary
// swapped after installation is refused.
//
// Built-in plugins (overlap, match, risk-check, segment-stats) are served
// by the xnode binary itself (`xnode plugin serve NAME`), so a node needs
// no toolchain and no extra file to run them; their digest is the xnode
// binary's. Plugins built separately (plugins/overlap, plugins/match,
// plugins/risk-check, plugins/segment-stats, or any language speaking the
// gRPC contract) are installed by path.
package registry

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"xnode/node/store"
	"xnode/plugins"
)

// ErrNotInstalled is returned for a plugin name nobody installed.
var ErrNotInstalled = errors.New("plugin not installed")

// Plugin is an installed plugin.
type Plugin struct {
	Name     string           `json:"name"`
	Version  string           `json:"version"`
	Protocol plugins.Protocol `json:"protocol"`
	// Digest is "sha256:<hex>" of the executable.
	Digest string `json:"digest"`
	// Path is the executable; Args are passed to it (built-ins).
	Path        string    `json:"path"`
	Args        []string  `json:"args,omitempty"`
	Builtin     bool      `json:"builtin,omitempty"`
	Description string    `json:"description,omitempty"`
	Installed   time.Time `json:"installed"`
	// Params are the accepted parameters, as plugins.Accepted prints them.
	Params string `json:"params,omitempty"`
}

// Sum returns the digest's raw bytes.
func (p Plugin) Sum() ([]byte, error) {
	h, ok := strings.CutPrefix(p.Digest, "sha256:")
	if !ok {
		return nil, fmt.Errorf("plugin %s: digest %q is not sha256:<hex>", p.Name, p.Digest)
	}
	return hex.DecodeString(h)
}

// FormatDigest renders a SHA-256 as the registry and policy files write it.
func FormatDigest(sum []byte) string { return "sha256:" + hex.EncodeToString(sum) }

// Registry reads and writes the store's plugins bucket.
type Registry struct {
	st  *store.Store
	log *slog.Logger
}

// New returns the registry over st.
func New(st *store.Store, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{st: st, log: log}
}

// Builtins are the plugin names `xnode plugin serve` runs.
var Builtins = []string{"overlap", "match", "risk-check", "segment-stats"}

// ServeArgs are the arguments that make the xnode binary serve built-in name.
func ServeArgs(name string) []string { return []string{"plugin", "serve", name} }

// Install launches the executable once to read its descriptor, pins its
// digest and records it under its name (replacing an older version).
func (r *Registry) Install(ctx context.Context, path string, args []string, builtin bool) (Plugin, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Plugin{}, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return Plugin{}, fmt.Errorf("failed to install plugin: %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return Plugin{}, fmt.Errorf("failed to install plugin: %s is not an executable file", abs)
	}
	sum, err := plugins.Digest(abs)
	if err != nil {
		return Plugin{}, err
	}
	c, err := plugins.LaunchCommand(ctx, abs, args, sum, r.log)
	if err != nil {
		return Plugin{}, fmt.Errorf("failed to install plugin %s: %w", abs, err)
	}
	defer c.Close()
	d := c.Descriptor()
	p := Plugin{
		Name: d.Name, Version: d.Version, Protocol: d.Protocol, Digest: FormatDigest(sum),
		Path: abs, Args: args, Builtin: builtin, Description: d.Description,
		Installed: time.Now().UTC(), Params: plugins.Accepted(d),
	}
	b, err := json.Marshal(p)
	if err != nil {
		return Plugin{}, err
	}
	if err := r.st.Put(store.Plugins, []byte(p.Name), b); err != nil {
		return Plugin{}, fmt.Errorf("failed to record plugin %s: %w", p.Name, err)
	}
	r.log.Info("plugin installed", "name", p.Name, "version", p.Version, "digest", p.Digest)
	return p, nil
}

// Get returns the installed plugin called name.
func (r *Registry) Get(name string) (Plugin, error) {
	b, err := r.st.Get(store.Plugins, []byte(name))
	if errors.Is(err, store.ErrNotFound) {
		return Plugin{}, fmt.Errorf("%w: %q (install it with `xnode plugin install PATH`; `xnode plugin list` shows what is installed)", ErrNotInstalled, name)
	}
	if err != nil {
		return Plugin{}, err
	}
	var p Plugin
	if err := json.Unmarshal(b, &p); err != nil {
		return Plugin{}, fmt.Errorf("failed to read plugin record %s: %w", name, err)
	}
	return p, nil
}

// List returns the installed plugins by name.
func (r *Registry) List() ([]Plugin, error) {
	var out []Plugin
	err := r.st.ForEach(store.Plugins, func(_, v []byte) error {
		var p Plugin
		if err := json.Unmarshal(v, &p); err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	slices.SortFunc(out, func(a, b Plugin) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// Remove uninstalls name.
func (r *Registry) Remove(name string) error {
	if _, err := r.Get(name); err != nil {
		return err
	}
	return r.st.Delete(store.Plugins, []byte(name))
}

// Launch starts the installed plugin, checking its pinned digest.
func (r *Registry) Launch(ctx context.Context, p Plugin) (*plugins.Client, error) {
	sum, err := p.Sum()
	if err != nil {
		return nil, err
	}
	return plugins.LaunchCommand(ctx, p.Path, p.Args, sum, r.log)
}
