package main

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// dirFlag is the persistent --dir flag every node command reads.
const dirFlag = "dir"

// addDirFlag registers --dir on the root command.
func addDirFlag(root *cobra.Command) {
	root.PersistentFlags().String(dirFlag, "", "node data directory (default $XNODE_DIR, then ~/.xnode)")
}

// dataDir resolves the node data directory: --dir, then $XNODE_DIR, then
// ~/.xnode. The result is absolute.
func dataDir(cmd *cobra.Command) string {
	dir, _ := cmd.Flags().GetString(dirFlag)
	if dir == "" {
		dir = os.Getenv("XNODE_DIR")
	}
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "."
		}
		dir = filepath.Join(home, ".xnode")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return dir
}
