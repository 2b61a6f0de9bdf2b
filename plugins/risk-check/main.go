// Command risk-check serves the built-in risk-check query plugin (package
// xnode/plugins/builtin/riskcheck) as a plugin process for an xnode node.
package main

import (
	"xnode/plugins"
	"xnode/plugins/builtin/riskcheck"
)

func main() { plugins.Serve(riskcheck.New()) }
