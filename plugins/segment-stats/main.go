// Command segment-stats serves the built-in segment-stats query plugin
// (package xnode/plugins/builtin/segmentstats) as a plugin process for an
// xnode node.
package main

import (
	"xnode/plugins"
	"xnode/plugins/builtin/segmentstats"
)

func main() { plugins.Serve(segmentstats.New()) }
