// Package par runs data-parallel loops for the protocol state machines.
// Every goroutine it starts has finished when For returns, so a machine that
// calls it still owns no goroutine between calls.
package par

import (
	"runtime"

	"golang.org/x/sync/errgroup"
)

// Workers returns w if positive, else GOMAXPROCS.
func Workers(w int) int {
	if w > 0 {
		return w
	}
	return runtime.GOMAXPROCS(0)
}

// For calls fn on consecutive chunks [lo, hi) covering [0, n), at most
// workers at a time, and returns the first error.
func For(workers, n, chunk int, fn func(lo, hi int) error) error {
	if n == 0 {
		return nil
	}
	if chunk < 1 {
		chunk = 1
	}
	if workers <= 1 || n <= chunk {
		return fn(0, n)
	}
	var g errgroup.Group
	g.SetLimit(workers)
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		g.Go(func() error { return fn(lo, hi) })
	}
	return g.Wait()
}
