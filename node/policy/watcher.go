package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often a Watcher looks at the policy file.
const DefaultInterval = 2 * time.Second

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Interval between checks of the file's modification time and size
	// (default DefaultInterval; negative: never poll, only Reload).
	Interval time.Duration
	// Log receives reloads and rejected files; nil discards.
	Log *slog.Logger
	// OnChange, if set, is called after the policy changed, from the
	// watcher's goroutine or Reload's caller, never concurrently. The node
	// uses it to append a policy-change audit entry.
	OnChange func(old, new *Policy)
}

// Watcher holds the current policy of a data dir and reloads policy.toml
// when it changes. An invalid new file is logged and ignored: the previous
// policy stays in force. A removed file means the built-in default (deny
// everything).
type Watcher struct {
	path string
	o    WatchOptions
	cur  atomic.Pointer[Policy]

	// mu serialises reloads and guards the fields below.
	mu       sync.Mutex
	seen     stamp  // the file as last examined, valid or not
	rejected string // digest of the last invalid file, so it is logged once

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type stamp struct {
	exists bool
	mod    time.Time
	size   int64
}

// Watch loads DIR/policy.toml (or the default policy if there is none) and
// starts polling it. An invalid file at start is an error: a node does not
// start with a policy it cannot read.
func Watch(dir string, o WatchOptions) (*Watcher, error) {
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{path: filepath.Join(dir, FileName), o: o}
	st := w.stat()
	p, err := Load(dir)
	if err != nil {
		return nil, err
	}
	w.seen = st
	w.cur.Store(p)
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	if o.Interval > 0 {
		w.wg.Add(1)
		go w.poll(ctx)
	}
	return w, nil
}

// Current returns the policy in force.
func (w *Watcher) Current() *Policy { return w.cur.Load() }

// Evaluate evaluates req under the current policy.
func (w *Watcher) Evaluate(req Request) Decision { return w.Current().Evaluate(req) }

// Close stops polling. It is safe to call twice.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.cancel()
		w.wg.Wait()
	})
	return nil
}

func (w *Watcher) poll(ctx context.Context) {
	defer w.wg.Done()
	t := time.NewTicker(w.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		changed := w.stat() != w.seen
		w.mu.Unlock()
		if changed {
			_, _ = w.Reload()
		}
	}
}

func (w *Watcher) stat() stamp {
	fi, err := os.Stat(w.path)
	if err != nil {
		return stamp{}
	}
	return stamp{exists: true, mod: fi.ModTime(), size: fi.Size()}
}

// Reload reads the file now. It reports whether the policy changed; an
// error means the file is invalid (or unreadable) and the previous policy
// stays in force.
func (w *Watcher) Reload() (changed bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.stat()
	w.seen = st
	old := w.Current()
	data, err := os.ReadFile(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		if old.IsDefault() {
			return false, nil
		}
		w.o.Log.Warn("policy file removed; denying every query until it is restored", "path", w.path)
		w.swapLocked(old, Default())
		return true, nil
	}
	if err != nil {
		w.o.Log.Error("failed to read the policy file; keeping the previous policy", "path", w.path, "err", err)
		return false, err
	}
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if digest == old.Digest() {
		return false, nil
	}
	p, err := Parse(data)
	if err != nil {
		if digest != w.rejected {
			w.o.Log.Error("invalid policy file; keeping the previous policy", "path", w.path, "err", err, "in_force", old.Digest())
			w.rejected = digest
		}
		return false, err
	}
	p.source = w.path
	w.rejected = ""
	w.o.Log.Info("policy reloaded", "path", w.path, "digest", p.Digest(), "rules", len(p.Rules))
	w.swapLocked(old, p)
	return true, nil
}

// swapLocked installs p; w.mu must be held, which also keeps OnChange calls
// from overlapping.
func (w *Watcher) swapLocked(old, p *Policy) {
	w.cur.Store(p)
	if w.o.OnChange != nil {
		w.o.OnChange(old, p)
	}
}
