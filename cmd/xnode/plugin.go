package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"xnode/node/api"
	"xnode/node/registry"
	"xnode/plugins"
	"xnode/plugins/builtin/match"
	"xnode/plugins/builtin/overlap"
	"xnode/plugins/builtin/riskcheck"
	"xnode/plugins/builtin/segmentstats"
)

// builtinPlugins are the query plugins compiled into this binary, which
// `xnode plugin serve NAME` serves; registry.Builtins names them for the
// node.
var builtinPlugins = map[string]func() plugins.Plugin{
	"overlap":       func() plugins.Plugin { return overlap.New() },
	"match":         func() plugins.Plugin { return match.New() },
	"risk-check":    func() plugins.Plugin { return riskcheck.New() },
	"segment-stats": func() plugins.Plugin { return segmentstats.New() },
}

func newPluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "plugin",
		Aliases: []string{"plugins"},
		Short:   "Install and list the query plugins this node runs",
		Long: `A query plugin decides what a joint query computes; the node runs the privacy
protocol and enforces policy. Installing a plugin pins the SHA-256 digest of its
executable: the node refuses to start it if the file changes afterwards, and a
peer whose policy approves another digest refuses the query.

The built-ins (` + strings.Join(registry.Builtins, ", ") + `) are served by the xnode binary itself:
install them with ` + "`xnode plugin install --builtin NAME`" + `.`,
	}
	cmd.AddCommand(newPluginInstallCmd(), newPluginListCmd(), newPluginServeCmd())
	return cmd
}

type pluginOptions struct {
	clientOptions
	// Builtin names a built-in plugin to install instead of a path.
	Builtin string
}

func newPluginInstallCmd() *cobra.Command {
	var (
		o      pluginOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "install PATH | --builtin NAME",
		Short: "Install and pin a plugin executable or a built-in plugin",
		Long: `Installs the plugin executable at PATH (made absolute; the node must be able to
read and run it), or with --builtin a plugin the xnode binary serves itself.
The node starts the plugin once to read its name, version, protocol and
parameters, and records them with the executable's SHA-256 digest. Installing
a plugin of the same name again replaces it.`,
		Example: `  xnode plugin install ./bin/segment-stats
  xnode plugin install --builtin overlap`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.clientOptions = clientOptionsFrom(cmd, asJSON)
			return runPluginInstall(cmd.Context(), o, args)
		},
	}
	cmd.Flags().StringVar(&o.Builtin, "builtin", "", "install this built-in plugin: "+strings.Join(registry.Builtins, " or "))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plugin as JSON")
	return cmd
}

func runPluginInstall(ctx context.Context, o pluginOptions, args []string) error {
	var req api.InstallPluginRequest
	switch {
	case len(args) == 1 && o.Builtin != "":
		return usageError("give either PATH or --builtin NAME, not both")
	case len(args) == 1 && args[0] != "":
		abs, err := filepath.Abs(args[0])
		if err != nil {
			return fmt.Errorf("failed to make %s absolute: %w", args[0], err)
		}
		req.Path = abs
	case o.Builtin != "":
		if !slices.Contains(registry.Builtins, o.Builtin) {
			return usageError("--builtin %s: no such built-in plugin; the built-ins are %s", o.Builtin, strings.Join(registry.Builtins, ", "))
		}
		req.Builtin = o.Builtin
	default:
		return usageError("name the plugin executable PATH, or a built-in with --builtin NAME (%s)", strings.Join(registry.Builtins, ", "))
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	p, err := c.InstallPlugin(ctx, req)
	if err != nil {
		what := req.Path
		if req.Builtin != "" {
			what = "built-in " + req.Builtin
		}
		return fmt.Errorf("failed to install plugin %s: %w", what, err)
	}
	if o.JSON {
		return printJSON(o.Stdout, p)
	}
	fmt.Fprintf(o.Stdout, "installed plugin %s %s (%s) from %s\ndigest %s\n", p.Name, p.Version, orDash(p.Protocol), pluginSource(p), p.Digest)
	if p.Params != "" {
		fmt.Fprintln(o.Stdout, p.Params)
	}
	return nil
}

func newPluginListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the installed plugins with their digests and parameters",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPluginList(cmd.Context(), pluginOptions{clientOptions: clientOptionsFrom(cmd, asJSON)}, args)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func runPluginList(ctx context.Context, o pluginOptions, _ []string) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	ps, err := c.ListPlugins(ctx)
	if err != nil {
		return err
	}
	if o.JSON {
		if ps == nil {
			ps = []api.PluginInfo{}
		}
		return printJSON(o.Stdout, ps)
	}
	if len(ps) == 0 {
		fmt.Fprintln(o.Stdout, "no plugins installed; install the built-ins with `xnode plugin install --builtin overlap` (and match)")
		return nil
	}
	tw := newTable(o.Stdout)
	row(tw, "NAME", "VERSION", "PROTOCOL", "DIGEST", "SOURCE", "INSTALLED")
	for _, p := range ps {
		row(tw, p.Name, orDash(p.Version), orDash(p.Protocol), p.Digest, pluginSource(p), fmtTime(p.Installed))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range ps {
		if p.Params == "" {
			continue
		}
		fmt.Fprintf(o.Stdout, "\n%s:\n", p.Name)
		for _, l := range strings.Split(strings.TrimRight(p.Params, "\n"), "\n") {
			fmt.Fprintf(o.Stdout, "  %s\n", l)
		}
	}
	return nil
}

// pluginSource says where a plugin runs from.
func pluginSource(p api.PluginInfo) string {
	if p.Builtin {
		return "built-in (" + orDash(p.Path) + ")"
	}
	return orDash(p.Path)
}

func newPluginServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "serve NAME",
		Short:  "Serve a built-in plugin over go-plugin (the node runs this; not for people)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			impl, err := builtinPlugin(args[0])
			if err != nil {
				return err
			}
			plugins.Serve(impl)
			return nil
		},
	}
}

// builtinPlugin returns the built-in plugin called name.
func builtinPlugin(name string) (plugins.Plugin, error) {
	mk, ok := builtinPlugins[name]
	if !ok || !slices.Contains(registry.Builtins, name) {
		return nil, usageError("no built-in plugin %q; the built-ins are %s", name, strings.Join(registry.Builtins, ", "))
	}
	return mk(), nil
}
