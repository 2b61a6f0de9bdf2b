package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a node process this process started.
type process struct {
	pid  int
	done chan struct{} // closed once the process exited and was reaped
	err  error         // Wait's error, valid after done
}

// startNode starts `bin run --dir dir` in its own process group, with stdout
// and stderr appended to logPath and stdin from /dev/null. A goroutine reaps
// it when it exits, so a stopped node never lingers as a zombie of ours.
func startNode(bin, dir, logPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open the node log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "--- %s: xnode testnet starts %s run --dir %s\n", time.Now().Format(time.RFC3339), bin, dir)
	cmd := exec.Command(bin, "run", "--dir", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "XNODE_DIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", bin, err)
	}
	p := &process{pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether p has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// alive reports whether pid names a live process (not a zombie).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// A zombie answers signal 0 but is gone for our purposes: its parent
	// (init, or a container's first process) has not reaped it yet.
	if stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	return true
}

// groupAlive reports whether any live (non-zombie) process is in process
// group pgid. Without /proc it asks kill(-pgid, 0), which counts zombies.
func groupAlive(pgid int) bool {
	if pgid <= 0 {
		return false
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		err := syscall.Kill(-pgid, 0)
		return err == nil || errors.Is(err, syscall.EPERM)
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces and parens.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// isNode reports whether the live process pid is the xnode node of dir, so
// that a pid reused by an unrelated program is never signalled. Where
// /proc is not available it trusts the pid.
func isNode(pid int, dir string) bool {
	if !alive(pid) {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return !isDir("/proc/self")
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	hasRun, hasDir := false, false
	for i, a := range args {
		hasRun = hasRun || a == "run"
		hasDir = hasDir || (a == dir && i > 0 && args[i-1] == "--dir") || a == "--dir="+dir
	}
	return hasRun && hasDir
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// stopGroups sends SIGTERM to the process group of every pid, waits until
// every process of those groups is gone or grace passes, then sends SIGKILL
// to the rest and waits a little more. It returns the pids whose process or
// group still lives at the end.
func stopGroups(ctx context.Context, pids []int, grace time.Duration) []int {
	signal := func(sig syscall.Signal, pids []int) {
		for _, pid := range pids {
			if pid <= 0 {
				continue // kill(0) and kill(-1) would reach our own group, or everything
			}
			// Each node leads its own group (Setpgid), so -pid reaches it and
			// anything it started; fall back to the pid alone.
			if err := syscall.Kill(-pid, sig); err != nil {
				_ = syscall.Kill(pid, sig)
			}
		}
	}
	waitGone := func(pids []int, d time.Duration) []int {
		deadline := time.Now().Add(d)
		for {
			var live []int
			for _, pid := range pids {
				if alive(pid) || groupAlive(pid) {
					live = append(live, pid)
				}
			}
			if len(live) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
				return live
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	signal(syscall.SIGTERM, pids)
	live := waitGone(pids, grace)
	if len(live) == 0 {
		return nil
	}
	signal(syscall.SIGKILL, live)
	return waitGone(live, 3*time.Second)
}
