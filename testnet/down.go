package testnet

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"
)

// StopGrace is how long Down waits after SIGTERM before it sends SIGKILL.
const StopGrace = 10 * time.Second

// Down stops every node of the testnet in dir: SIGTERM to each node's
// process group, SIGKILL to what still runs after StopGrace. Nodes that
// already died are fine. It marks every node stopped in testnet.json and
// returns the state; it fails only if a process survives SIGKILL.
func Down(ctx context.Context, dir string, logf func(string, ...any)) (*State, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	st, err := Load(dir)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, n := range st.Nodes {
		pids = append(pids, n.pids()...)
	}
	if len(pids) > 0 && logf != nil {
		logf("stopping %d node processes", len(pids))
	}
	left := stopGroups(ctx, pids, StopGrace)
	for i := range st.Nodes {
		n := &st.Nodes[i]
		if !slices.ContainsFunc(left, func(pid int) bool { return slices.Contains(n.pids(), pid) }) {
			n.Pid, n.Status = 0, StatusStopped
		}
	}
	st.Stopped = time.Now().UTC()
	if err := st.Save(); err != nil {
		return st, err
	}
	if len(left) > 0 {
		return st, fmt.Errorf("failed to stop node processes %v; stop them by hand (kill -9) and run `xnode testnet down --dir %s` again", left, dir)
	}
	return st, nil
}
