// Command match serves the built-in match query plugin (package
// xnode/plugins/builtin/match) as a plugin process for an xnode node.
package main

import (
	"xnode/plugins"
	"xnode/plugins/builtin/match"
)

func main() { plugins.Serve(match.New()) }
