package policy

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"xnode/node/store"
)

// Errors of the Limiter, wrapped with the peer, rule and counts.
var (
	ErrRateLimited     = errors.New("daily query limit reached")
	ErrBudgetExhausted = errors.New("daily evaluation budget exhausted")
)

// Keys in the store's budgets bucket (which other services share):
//
//	policy/q/<YYYY-MM-DD>/<rule>\x00<peer ID>  queries taken that day (uint64)
//	policy/e/<YYYY-MM-DD>/<rule>\x00<peer ID>  evaluations spent that day (uint64)
//
// The day is the calendar day in the limiter's time zone. Days before
// yesterday are pruned.
var (
	prefixQueries     = []byte("policy/q/")
	prefixEvaluations = []byte("policy/e/")
)

const dayLayout = "2006-01-02"

// Limiter enforces the per-peer daily limits of policy rules. Counts live
// in the store, so they survive restarts. It is safe for concurrent use.
type Limiter struct {
	st  *store.Store
	loc *time.Location

	// mu guards pruned.
	mu     sync.Mutex
	pruned string // the day old counts were last pruned
}

// NewLimiter counts in st, by calendar days of loc (nil: UTC; pass
// Policy.Location).
func NewLimiter(st *store.Store, loc *time.Location) *Limiter {
	if loc == nil {
		loc = time.UTC
	}
	return &Limiter{st: st, loc: loc}
}

func counterKey(prefix []byte, day, rule, peer string) []byte {
	k := append(bytes.Clone(prefix), day...)
	k = append(k, '/')
	k = append(k, rule...)
	k = append(k, 0)
	return append(k, peer...)
}

// Take counts one query by peer (its peer ID) under decision d, which must
// allow it (Allow or Manual). If the peer already used d.MaxQueriesPerDay
// queries today under d's rule, nothing is counted and the error wraps
// ErrRateLimited. Call it when a query is accepted, before it is queued for
// approval or run, so denied-by-a-person queries count too.
func (l *Limiter) Take(peer string, d Decision, now time.Time) error {
	_, err := l.add(prefixQueries, peer, d, 1, int64(d.MaxQueriesPerDay), now, ErrRateLimited, "queries")
	return err
}

// Spend counts n OPRF evaluations by peer under decision d against the
// rule's daily evaluation budget. If they do not fit, nothing is counted and
// the error wraps ErrBudgetExhausted.
func (l *Limiter) Spend(peer string, d Decision, n int64, now time.Time) error {
	if n < 0 {
		return fmt.Errorf("cannot spend %d evaluations", n)
	}
	_, err := l.add(prefixEvaluations, peer, d, n, d.EvaluationBudget, now, ErrBudgetExhausted, "evaluations")
	return err
}

// Used returns how many queries and evaluations peer has used today under
// rule.
func (l *Limiter) Used(peer, rule string, now time.Time) (queries, evaluations int64, err error) {
	day := now.In(l.loc).Format(dayLayout)
	err = l.st.View(func(tx *store.Tx) error {
		var err error
		if queries, err = readCount(tx, counterKey(prefixQueries, day, rule, peer)); err != nil {
			return err
		}
		evaluations, err = readCount(tx, counterKey(prefixEvaluations, day, rule, peer))
		return err
	})
	return queries, evaluations, err
}

func (l *Limiter) add(prefix []byte, peer string, d Decision, n, limit int64, now time.Time, sentinel error, what string) (int64, error) {
	switch {
	case d.Verdict != Allow && d.Verdict != Manual:
		return 0, fmt.Errorf("rule %q denied the query; nothing to count", d.Rule)
	case peer == "":
		return 0, errors.New("cannot count a query without the peer's ID")
	}
	local := now.In(l.loc)
	day := local.Format(dayLayout)
	key := counterKey(prefix, day, d.Rule, peer)
	var total int64
	err := l.st.Update(func(tx *store.Tx) error {
		used, err := readCount(tx, key)
		if err != nil {
			return err
		}
		if limit > 0 && used+n > limit {
			y, m, dd := local.Date()
			reset := time.Date(y, m, dd+1, 0, 0, 0, 0, l.loc)
			return fmt.Errorf("%w: peer %s has used %d of the %d %s per day that rule %q allows; the count resets at %s",
				sentinel, peer, used, limit, what, d.Rule, reset.Format(time.RFC3339))
		}
		total = used + n
		return tx.Put(store.Budgets, key, store.EncodeUint64(uint64(total)))
	})
	if err != nil {
		return 0, err
	}
	l.maybePrune(local)
	return total, nil
}

func readCount(tx *store.Tx, key []byte) (int64, error) {
	v, err := tx.Get(store.Budgets, key)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := store.DecodeUint64(v)
	if err != nil {
		return 0, fmt.Errorf("corrupt rate-limit counter %q: %w", key, err)
	}
	return int64(n), nil
}

// maybePrune deletes counters of days before yesterday, once a day.
func (l *Limiter) maybePrune(local time.Time) {
	today := local.Format(dayLayout)
	l.mu.Lock()
	if l.pruned == today {
		l.mu.Unlock()
		return
	}
	l.pruned = today
	l.mu.Unlock()
	y, m, d := local.Date()
	keep := time.Date(y, m, d-1, 0, 0, 0, 0, l.loc).Format(dayLayout)
	_ = l.st.Update(func(tx *store.Tx) error {
		var old [][]byte
		for _, p := range [][]byte{prefixQueries, prefixEvaluations} {
			if err := tx.ForEachPrefix(store.Budgets, p, func(k, _ []byte) error {
				if string(k[len(p):min(len(k), len(p)+len(dayLayout))]) < keep {
					old = append(old, k)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		for _, k := range old {
			if err := tx.Delete(store.Budgets, k); err != nil {
				return err
			}
		}
		return nil
	})
}
