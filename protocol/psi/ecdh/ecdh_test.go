package ecdh_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"xnode/crypto"
	"xnode/protocol"
	"xnode/protocol/memconn"
	"xnode/protocol/psi/ecdh"
)

var modes = []ecdh.Mode{ecdh.Intersection, ecdh.IntersectionBoth, ecdh.Cardinality}

func suites(t testing.TB) []crypto.Suite {
	var out []crypto.Suite
	for _, name := range []string{"ristretto255-sha512", "p256-sha256", crypto.X25519Elligator2} {
		s, err := crypto.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

type outcome struct {
	q, r ecdh.Result
}

// run drives both parties over an in-memory pipe.
func run(t testing.TB, cfg ecdh.Config, x, y [][]byte, tap memconn.Tap) (outcome, error) {
	t.Helper()
	q, err := ecdh.NewQuerier(cfg, ecdh.Slice(x))
	if err != nil {
		t.Fatalf("NewQuerier: %v", err)
	}
	r, err := ecdh.NewResponder(cfg, ecdh.Slice(y))
	if err != nil {
		t.Fatalf("NewResponder: %v", err)
	}
	a, b := memconn.Pipe(8, tap)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var g errgroup.Group
	g.Go(func() error {
		err := protocol.Run(ctx, q, a)
		if err != nil {
			a.Close()
		}
		return err
	})
	g.Go(func() error {
		err := protocol.Run(ctx, r, b)
		if err != nil {
			b.Close()
		}
		return err
	})
	if err := g.Wait(); err != nil {
		return outcome{}, err
	}
	var o outcome
	if o.q, err = q.Result(); err != nil {
		t.Fatalf("querier Result: %v", err)
	}
	if o.r, err = r.Result(); err != nil {
		t.Fatalf("responder Result: %v", err)
	}
	return o, nil
}

// want computes the expected outcome with plain maps.
func want(x, y [][]byte) (qMatches, rMatches []int, card int) {
	inY := map[string]bool{}
	for _, v := range y {
		inY[string(v)] = true
	}
	inX := map[string]bool{}
	shared := map[string]bool{}
	qMatches, rMatches = []int{}, []int{}
	for i, v := range x {
		inX[string(v)] = true
		if inY[string(v)] {
			qMatches = append(qMatches, i)
			shared[string(v)] = true
		}
	}
	for i, v := range y {
		if inX[string(v)] {
			rMatches = append(rMatches, i)
		}
	}
	return qMatches, rMatches, len(shared)
}

func items(prefix string, lo, hi int) [][]byte {
	out := make([][]byte, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, []byte(fmt.Sprintf("%s:%012d", prefix, i)))
	}
	return out
}

func check(t *testing.T, mode ecdh.Mode, x, y [][]byte, o outcome) {
	t.Helper()
	qm, rm, card := want(x, y)
	if o.q.Cardinality != card {
		t.Errorf("querier cardinality = %d, want %d", o.q.Cardinality, card)
	}
	if o.q.PeerSize != len(y) || o.r.PeerSize != len(x) {
		t.Errorf("peer sizes = %d/%d, want %d/%d", o.q.PeerSize, o.r.PeerSize, len(y), len(x))
	}
	switch mode {
	case ecdh.Cardinality:
		if o.q.Matches != nil || o.r.Matches != nil {
			t.Errorf("cardinality mode revealed matches: querier %v, responder %v", o.q.Matches, o.r.Matches)
		}
	case ecdh.Intersection:
		if !slices.Equal(o.q.Matches, qm) {
			t.Errorf("querier matches = %v, want %v", head(o.q.Matches), head(qm))
		}
		if o.r.Matches != nil || o.r.Cardinality != 0 {
			t.Errorf("intersection mode told the responder %v (%d)", o.r.Matches, o.r.Cardinality)
		}
	case ecdh.IntersectionBoth:
		if !slices.Equal(o.q.Matches, qm) {
			t.Errorf("querier matches = %v, want %v", head(o.q.Matches), head(qm))
		}
		if !slices.Equal(o.r.Matches, rm) {
			t.Errorf("responder matches = %v, want %v", head(o.r.Matches), head(rm))
		}
		if o.r.Cardinality != card {
			t.Errorf("responder cardinality = %d, want %d", o.r.Cardinality, card)
		}
	}
}

func head(v []int) []int {
	if len(v) > 10 {
		return v[:10]
	}
	return v
}

func config(s crypto.Suite, mode ecdh.Mode, batch int) ecdh.Config {
	return ecdh.Config{Suite: s, Mode: mode, Session: []byte("test-session"), BatchSize: batch}
}

func TestModes(t *testing.T) {
	cases := []struct {
		name string
		x, y [][]byte
	}{
		{"both empty", nil, nil},
		{"querier empty", nil, items("id", 0, 5)},
		{"responder empty", items("id", 0, 5), nil},
		{"disjoint", items("id", 0, 20), items("id", 20, 45)},
		{"identical", items("id", 0, 30), items("id", 0, 30)},
		{"one shared", items("id", 0, 17), items("id", 16, 40)},
		{"duplicates", append(items("id", 0, 10), items("id", 3, 6)...), append(items("id", 5, 12), items("id", 5, 7)...)},
		{"batch boundaries", items("id", 0, 64), items("id", 32, 97)},
	}
	for _, s := range suites(t) {
		for _, mode := range modes {
			for _, tc := range cases {
				t.Run(fmt.Sprintf("%s/%v/%s", s.Name(), mode, tc.name), func(t *testing.T) {
					o, err := run(t, config(s, mode, 8), tc.x, tc.y, nil)
					if err != nil {
						t.Fatalf("run: %v", err)
					}
					check(t, mode, tc.x, tc.y, o)
				})
			}
		}
	}
}

func TestRandomAgainstMap(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 5_000
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range suites(t) {
		for _, mode := range modes {
			t.Run(fmt.Sprintf("%s/%v", s.Name(), mode), func(t *testing.T) {
				n := n
				if s.Name() != crypto.DefaultSuite && mode != ecdh.Intersection && !testing.Short() {
					n /= 10 // keep the slower suites' extra modes quick
				}
				x, y := randomSets(rng, n)
				o, err := run(t, config(s, mode, 0), x, y, nil)
				if err != nil {
					t.Fatal(err)
				}
				check(t, mode, x, y, o)
			})
		}
	}
}

// randomSets draws two sets of about n resident-ID-like strings from a space
// of 3n, so that they overlap by about a third.
func randomSets(rng *rand.Rand, n int) (x, y [][]byte) {
	draw := func() [][]byte {
		seen := map[uint64]bool{}
		out := make([][]byte, 0, n)
		for len(out) < n {
			v := rng.Uint64N(uint64(3 * n))
			if seen[v] {
				continue
			}
			seen[v] = true
			out = append(out, []byte(fmt.Sprintf("cn_id:1101011990%08d", v)))
		}
		return out
	}
	return draw(), draw()
}

// TestWireCarriesNoIdentifier records every byte that crosses the transport
// and checks that no raw identifier, and no SHA-256 or SHA-512 of one (in
// full or the first 8 bytes), appears anywhere in it.
func TestWireCarriesNoIdentifier(t *testing.T) {
	x := items("cn_id:110101199003071234", 0, 40)
	y := items("cn_id:110101199003071234", 20, 70)
	for _, s := range suites(t) {
		for _, mode := range modes {
			t.Run(fmt.Sprintf("%s/%v", s.Name(), mode), func(t *testing.T) {
				var mu sync.Mutex
				var wire [][]byte
				tap := func(_ int, msg []byte) {
					mu.Lock()
					defer mu.Unlock()
					wire = append(wire, append([]byte(nil), msg...))
				}
				if _, err := run(t, config(s, mode, 16), x, y, tap); err != nil {
					t.Fatal(err)
				}
				if len(wire) == 0 {
					t.Fatal("tap saw no message")
				}
				all := bytes.Join(wire, nil)
				for _, id := range append(slices.Clone(x), y...) {
					h256 := sha256.Sum256(id)
					h512 := sha512.Sum512(id)
					forbidden := map[string][]byte{
						"raw identifier":    id,
						"identifier suffix": id[len(id)-12:],
						"SHA-256":           h256[:8],
						"SHA-512":           h512[:8],
					}
					for what, b := range forbidden {
						if bytes.Contains(all, b) {
							t.Fatalf("%s of %q crossed the wire", what, id)
						}
					}
				}
			})
		}
	}
}

func TestRefusesMismatchedSessions(t *testing.T) {
	s := suites(t)[0]
	p := suites(t)[1]
	base := config(s, ecdh.Intersection, 8)
	cases := []struct {
		name string
		q, r ecdh.Config
	}{
		{"suite", base, config(p, ecdh.Intersection, 8)},
		{"mode", base, config(s, ecdh.Cardinality, 8)},
		{"session", base, ecdh.Config{Suite: s, Mode: ecdh.Intersection, Session: []byte("other")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := ecdh.NewQuerier(tc.q, ecdh.Slice(items("a", 0, 3)))
			r, _ := ecdh.NewResponder(tc.r, ecdh.Slice(items("a", 0, 3)))
			hello, err := q.Next()
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Deliver(hello); !errors.Is(err, ecdh.ErrMismatch) {
				t.Errorf("Deliver(hello) = %v, want ErrMismatch", err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	s := suites(t)[0]
	cases := []struct {
		name string
		cfg  ecdh.Config
	}{
		{"no suite", ecdh.Config{Mode: ecdh.Intersection, Session: []byte("s")}},
		{"no mode", ecdh.Config{Suite: s, Session: []byte("s")}},
		{"no session", ecdh.Config{Suite: s, Mode: ecdh.Intersection}},
		{"huge batch", ecdh.Config{Suite: s, Mode: ecdh.Intersection, Session: []byte("s"), BatchSize: ecdh.MaxBatchSize + 1}},
		{"negative querier size", ecdh.Config{Suite: s, Mode: ecdh.Intersection, Session: []byte("s"), QuerierSize: -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ecdh.NewQuerier(tc.cfg, ecdh.Slice(nil)); err == nil {
				t.Error("NewQuerier accepted the config")
			}
			if _, err := ecdh.NewResponder(tc.cfg, ecdh.Slice(nil)); err == nil {
				t.Error("NewResponder accepted the config")
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range modes {
		got, err := ecdh.ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", m.String(), got, err, m)
		}
	}
	if _, err := ecdh.ParseMode("union"); err == nil {
		t.Error("ParseMode(union) succeeded")
	}
}
