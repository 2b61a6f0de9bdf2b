package testnet

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// startGroup starts sh -c script in its own process group and reaps it.
func startGroup(t *testing.T, script string) int {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return cmd.Process.Pid
}

func TestStopGroups(t *testing.T) {
	// The child sleeps in a grandchild: stopping the group must end both.
	polite := startGroup(t, "sleep 60 & wait")
	stubborn := startGroup(t, `trap "" TERM; sleep 60 & wait; sleep 60`)
	time.Sleep(100 * time.Millisecond) // let sh install its trap
	for _, pid := range []int{polite, stubborn} {
		if !alive(pid) {
			t.Fatalf("pid %d is not alive before the stop", pid)
		}
	}
	start := time.Now()
	left := stopGroups(context.Background(), []int{polite, stubborn, 0, 999999999}, 500*time.Millisecond)
	if len(left) != 0 {
		t.Errorf("stopGroups left %v running", left)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("stopGroups returned after %v; the stubborn group ignores SIGTERM, so it should have waited the grace", d)
	}
	for _, pid := range []int{polite, stubborn} {
		if alive(pid) {
			t.Errorf("pid %d survived stopGroups", pid)
		}
		// The group's sleep too: no process is left in the group (allow
		// init a moment to reap the orphaned sleep).
		deadline := time.Now().Add(2 * time.Second)
		for syscall.Kill(-pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if err := syscall.Kill(-pid, 0); err == nil {
			t.Errorf("process group %d still has members", pid)
		}
	}
}

func TestIsNode(t *testing.T) {
	pid := startGroup(t, "sleep 60")
	if isNode(pid, "/some/testnet/node1") {
		t.Errorf("isNode(sleep) = true; a pid reused by another program must never be signalled")
	}
	if isNode(0, "/x") || alive(-1) {
		t.Error("isNode(0) or alive(-1) is true")
	}
}
