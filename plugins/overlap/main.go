// Command overlap serves the built-in overlap query plugin (package
// xnode/plugins/builtin/overlap) as a plugin process for an xnode node.
package main

import (
	"xnode/plugins"
	"xnode/plugins/builtin/overlap"
)

func main() { plugins.Serve(overlap.New()) }
