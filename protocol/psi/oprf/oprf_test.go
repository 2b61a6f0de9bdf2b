package oprf_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"xnode/protocol"
	"xnode/protocol/memconn"
	"xnode/protocol/psi/oprf"
)

func listItems(lo, hi int) []oprf.Item {
	out := make([]oprf.Item, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, oprf.Item{Key: fmt.Appendf(nil, "cn_id:%018d", i), Labels: fmt.Appendf(nil, "level=%d;date=2025-01-%02d", i%5, i%28+1)})
	}
	return out
}

func ids(lo, hi int) [][]byte {
	out := make([][]byte, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, fmt.Appendf(nil, "cn_id:%018d", i))
	}
	return out
}

func newEpoch(t testing.TB, id uint64, n int) *oprf.Epoch {
	t.Helper()
	e, err := oprf.NewEpoch(rand.Reader, id, oprf.EpochConfig{ExpectedItems: n})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func encode(t testing.TB, e *oprf.Epoch, items []oprf.Item) *oprf.Encoding {
	t.Helper()
	enc, err := e.Encode(items)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// run drives both parties over an in-memory pipe.
func run(t testing.TB, qc oprf.QuerierConfig, x [][]byte, rc oprf.ResponderConfig, tap memconn.Tap) (oprf.QuerierResult, oprf.ResponderResult, error, error) {
	t.Helper()
	q, err := oprf.NewQuerier(qc, x)
	if err != nil {
		t.Fatalf("NewQuerier: %v", err)
	}
	r, err := oprf.NewResponder(rc)
	if err != nil {
		t.Fatalf("NewResponder: %v", err)
	}
	a, b := memconn.Pipe(8, tap)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var qerr, rerr error
	var g errgroup.Group
	g.Go(func() error {
		qerr = protocol.Run(ctx, q, a)
		if qerr != nil {
			a.Close()
		}
		return nil
	})
	g.Go(func() error {
		rerr = protocol.Run(ctx, r, b)
		if rerr != nil {
			b.Close()
		}
		return nil
	})
	_ = g.Wait()
	var qr oprf.QuerierResult
	if qerr == nil {
		if qr, err = q.Result(); err != nil {
			t.Fatalf("querier Result: %v", err)
		}
	}
	rr, rres := r.Result()
	if rerr == nil {
		rerr = rres
	}
	return qr, rr, qerr, rerr
}

// wantMatches lists the positions of x that are keys of items, with labels.
func checkMatches(t *testing.T, x [][]byte, items []oprf.Item, got []oprf.Match, labeled bool) {
	t.Helper()
	labels := map[string][]byte{}
	for _, it := range items {
		labels[string(it.Key)] = it.Labels
	}
	var want []oprf.Match
	for i, v := range x {
		if l, ok := labels[string(v)]; ok {
			if !labeled {
				l = nil
			}
			want = append(want, oprf.Match{Index: i, Labels: l})
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d matches, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Index != want[i].Index || !bytes.Equal(got[i].Labels, want[i].Labels) {
			t.Fatalf("match %d = {%d %q}, want {%d %q}", i, got[i].Index, got[i].Labels, want[i].Index, want[i].Labels)
		}
	}
}

func TestSessionsSyncAndMatch(t *testing.T) {
	for _, form := range []oprf.Form{oprf.Labeled, oprf.Membership} {
		t.Run(form.String(), func(t *testing.T) {
			ep := newEpoch(t, 7, 400)
			items := listItems(0, 400)
			enc := encode(t, ep, items)
			x := ids(300, 700) // 100 hits
			rc := oprf.ResponderConfig{Epoch: ep, Encoding: enc}

			// First session: full sync, small batches and several proof groups.
			qr, rr, qerr, rerr := run(t, oprf.QuerierConfig{Form: form, BatchSize: 300}, x, rc, nil)
			if qerr != nil || rerr != nil {
				t.Fatalf("session: querier %v, responder %v", qerr, rerr)
			}
			if qr.Sync != oprf.SyncFull || rr.Sync != oprf.SyncFull || rr.Evaluated != len(x) || qr.Evaluated != len(x) {
				t.Fatalf("sync %v/%v, evaluated %d/%d; want full and %d", qr.Sync, rr.Sync, qr.Evaluated, rr.Evaluated, len(x))
			}
			checkMatches(t, x, items, qr.Matches, form == oprf.Labeled)

			// Second session with the cache: nothing to transfer.
			qr2, _, qerr, rerr := run(t, oprf.QuerierConfig{Form: form, Cache: qr.Set}, x[:50], rc, nil)
			if qerr != nil || rerr != nil || qr2.Sync != oprf.SyncCurrent {
				t.Fatalf("cached session: sync %v, querier %v, responder %v; want current", qr2.Sync, qerr, rerr)
			}

			// The list changes twice: the cache catches up with deltas.
			enc2, d1, err := ep.Update(enc, oprf.Changes{Put: listItems(400, 420), Remove: ids(300, 310)})
			if err != nil {
				t.Fatal(err)
			}
			changed := []oprf.Item{{Key: ids(320, 321)[0], Labels: []byte("level=9")}}
			enc3, d2, err := ep.Update(enc2, oprf.Changes{Put: changed})
			if err != nil {
				t.Fatal(err)
			}
			final := append(append(listItems(0, 300), listItems(310, 420)...), changed...)
			final = dedupe(final)
			rc3 := oprf.ResponderConfig{Epoch: ep, Encoding: enc3, Deltas: []*oprf.Delta{d2, d1}}
			qr3, _, qerr, rerr := run(t, oprf.QuerierConfig{Form: form, Cache: qr.Set}, x, rc3, nil)
			if qerr != nil || rerr != nil || qr3.Sync != oprf.SyncDeltas || qr3.Set.Version() != 3 {
				t.Fatalf("delta session: sync %v version %d, querier %v, responder %v; want deltas to version 3", qr3.Sync, qr3.Set.Version(), qerr, rerr)
			}
			checkMatches(t, x, final, qr3.Matches, form == oprf.Labeled)
		})
	}
}

// dedupe keeps the last item per key, in first-seen order.
func dedupe(items []oprf.Item) []oprf.Item {
	pos := map[string]int{}
	var out []oprf.Item
	for _, it := range items {
		if i, ok := pos[string(it.Key)]; ok {
			out[i] = it
			continue
		}
		pos[string(it.Key)] = len(out)
		out = append(out, it)
	}
	return out
}

func TestDeltasEqualRebuild(t *testing.T) {
	ep := newEpoch(t, 3, 2000)
	items := listItems(0, 2000)
	enc := encode(t, ep, items)
	mem := enc.Membership()
	cur := items
	var set oprf.Set = enc
	var mset oprf.Set = mem
	steps := []oprf.Changes{
		{Put: listItems(2000, 2100)},
		{Remove: ids(0, 150)},
		{Put: []oprf.Item{{Key: ids(500, 501)[0], Labels: []byte("changed")}}, Remove: ids(2000, 2010)},
		{Put: listItems(5000, 5001), Remove: ids(600, 601)},
	}
	for i, ch := range steps {
		next, d, err := ep.Update(enc, ch)
		if err != nil {
			t.Fatalf("step %d: Update: %v", i, err)
		}
		// Through the wire format, as a querier gets it.
		chunks, err := d.Chunks(oprf.MinChunkSize)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := oprf.DecodeDelta(chunks, 0)
		if err != nil {
			t.Fatalf("step %d: DecodeDelta: %v", i, err)
		}
		if set, err = set.Apply(d2); err != nil {
			t.Fatalf("step %d: Apply: %v", i, err)
		}
		if mset, err = mset.Apply(d2); err != nil {
			t.Fatalf("step %d: membership Apply: %v", i, err)
		}
		enc = next
		cur = applyChanges(cur, ch)
	}
	rebuilt := encode(t, ep, cur)
	// A rebuild is version 1; compare contents at the same version by
	// re-serialising both and ignoring the version field.
	if !sameContent(t, set, rebuilt) {
		t.Errorf("labeled encoding after %d deltas differs from a full rebuild", len(steps))
	}
	if !sameContent(t, mset, rebuilt.Membership()) {
		t.Errorf("membership set after %d deltas differs from a full rebuild", len(steps))
	}
	if !set.(*oprf.Encoding).Equal(enc) {
		t.Errorf("querier's patched encoding differs from the responder's")
	}
	if set.Len() != len(cur) || mset.Len() != len(cur) {
		t.Errorf("Len = %d/%d, want %d", set.Len(), mset.Len(), len(cur))
	}
}

func applyChanges(items []oprf.Item, ch oprf.Changes) []oprf.Item {
	rm := map[string]bool{}
	for _, k := range ch.Remove {
		rm[string(k)] = true
	}
	var out []oprf.Item
	for _, it := range items {
		if !rm[string(it.Key)] {
			out = append(out, it)
		}
	}
	return dedupe(append(out, ch.Put...))
}

func sameContent(t *testing.T, a, b oprf.Set) bool {
	t.Helper()
	ca, err := a.Chunks(oprf.DefaultChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.Chunks(oprf.DefaultChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	// Header bytes 59..67 hold the version.
	ha, hb := bytes.Clone(ca[0]), bytes.Clone(cb[0])
	clear(ha[59:67])
	clear(hb[59:67])
	if !bytes.Equal(ha, hb) || len(ca) != len(cb) {
		return false
	}
	for i := 1; i < len(ca); i++ {
		if !bytes.Equal(ca[i], cb[i]) {
			return false
		}
	}
	return true
}

func TestOldEpochRefused(t *testing.T) {
	items := listItems(0, 100)
	ep1 := newEpoch(t, 1, 100)
	enc1 := encode(t, ep1, items)
	ep2 := newEpoch(t, 2, 100)
	enc2 := encode(t, ep2, items)
	x := ids(50, 150)

	// An honest responder in a new epoch sends the new encoding in full.
	qr, _, qerr, rerr := run(t, oprf.QuerierConfig{Cache: enc1}, x, oprf.ResponderConfig{Epoch: ep2, Encoding: enc2}, nil)
	if qerr != nil || rerr != nil || qr.Sync != oprf.SyncFull || qr.Commitment != ep2.Commitment() {
		t.Fatalf("after rotation: sync %v commitment %v, errors %v/%v; want a full sync to epoch 2", qr.Sync, qr.Commitment, qerr, rerr)
	}
	checkMatches(t, x, items, qr.Matches, true)

	// A querier pinned to epoch 1 refuses epoch 2's key.
	pin := ep1.Commitment()
	_, _, qerr, _ = run(t, oprf.QuerierConfig{Pin: &pin}, x, oprf.ResponderConfig{Epoch: ep2, Encoding: enc2}, nil)
	if !errors.Is(qerr, oprf.ErrCommitment) {
		t.Errorf("pinned querier against a rotated key: %v, want ErrCommitment", qerr)
	}

	// A responder that claims the old cache is current is refused.
	q, _ := oprf.NewQuerier(oprf.QuerierConfig{Cache: enc1}, x)
	_, _ = q.Next()
	err := q.Deliver(mustMarshal(t, syncMsg(ep2.Commitment(), 1, "current", 0)))
	if !errors.Is(err, oprf.ErrStale) {
		t.Errorf("old-epoch cache called current: %v, want ErrStale", err)
	}

	// Deltas of one epoch do not apply to another's encoding.
	_, d, err := ep2.Update(enc2, oprf.Changes{Put: listItems(100, 101)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc1.Apply(d); !errors.Is(err, oprf.ErrStale) {
		t.Errorf("epoch-2 delta on an epoch-1 encoding: %v, want ErrStale", err)
	}
	if _, err := oprf.NewResponder(oprf.ResponderConfig{Epoch: ep2, Encoding: enc1}); !errors.Is(err, oprf.ErrStale) {
		t.Errorf("responder with an old-epoch encoding: %v, want ErrStale", err)
	}
}

func TestBudgetRefusal(t *testing.T) {
	ep := newEpoch(t, 1, 50)
	enc := encode(t, ep, listItems(0, 50))
	secret := errors.New("policy: peer node7 used 900 of 900 (internal detail)")
	var mu sync.Mutex
	var asked []int
	budget := func(n int) error {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, n)
		if len(asked) > 1 {
			return secret
		}
		return nil
	}
	_, rr, qerr, rerr := run(t, oprf.QuerierConfig{BatchSize: 40, Window: 1}, ids(0, 100), oprf.ResponderConfig{Epoch: ep, Encoding: enc, Budget: budget}, nil)
	if !errors.Is(qerr, oprf.ErrRefusedBudget) {
		t.Fatalf("querier error %v, want ErrRefusedBudget", qerr)
	}
	if strings.Contains(qerr.Error(), "internal detail") {
		t.Errorf("querier error %q carries the responder's internal text", qerr)
	}
	if !errors.Is(rerr, oprf.ErrRefusedBudget) || !errors.Is(rerr, secret) {
		t.Errorf("responder error %v, want ErrRefusedBudget wrapping the budget's error", rerr)
	}
	if rr.Evaluated != 40 || len(asked) != 2 || asked[0] != 40 {
		t.Errorf("evaluated %d, budget asked %v; want 40 evaluated and asked [40 40]", rr.Evaluated, asked)
	}
}

func TestTooLargeRefusal(t *testing.T) {
	ep := newEpoch(t, 1, 10)
	enc := encode(t, ep, listItems(0, 10))
	_, _, qerr, rerr := run(t, oprf.QuerierConfig{}, ids(0, 20), oprf.ResponderConfig{Epoch: ep, Encoding: enc, MaxItems: 10}, nil)
	if !errors.Is(qerr, oprf.ErrRefusedTooLarge) || !errors.Is(rerr, oprf.ErrRefusedTooLarge) {
		t.Errorf("errors %v / %v, want ErrRefusedTooLarge", qerr, rerr)
	}
}

func TestWireCarriesNoIdentifier(t *testing.T) {
	ep := newEpoch(t, 1, 200)
	items := listItems(0, 200)
	enc := encode(t, ep, items)
	x := ids(100, 300)
	var mu sync.Mutex
	var wire [][]byte
	tap := func(_ int, msg []byte) {
		mu.Lock()
		defer mu.Unlock()
		wire = append(wire, bytes.Clone(msg))
	}
	for _, form := range []oprf.Form{oprf.Labeled, oprf.Membership} {
		if _, _, qerr, rerr := run(t, oprf.QuerierConfig{Form: form}, x, oprf.ResponderConfig{Epoch: ep, Encoding: enc}, tap); qerr != nil || rerr != nil {
			t.Fatalf("%v session: %v / %v", form, qerr, rerr)
		}
	}
	all := bytes.Join(wire, nil)
	if len(all) == 0 {
		t.Fatal("tap saw nothing")
	}
	var secrets [][]byte
	for _, v := range append(ids(0, 300), []byte("level=")) {
		s256 := sha256.Sum256(v)
		s512 := sha512.Sum512(v)
		secrets = append(secrets, v, s256[:16], s512[:16])
	}
	for _, s := range secrets {
		if bytes.Contains(all, s) {
			t.Fatalf("wire carries %x (an identifier, a label or an unkeyed hash of one)", s)
		}
	}
}

func TestSerialisationRoundTrip(t *testing.T) {
	ep := newEpoch(t, 9, 3000)
	enc := encode(t, ep, listItems(0, 3000))
	for _, s := range []oprf.Set{enc, enc.Membership()} {
		chunks, err := s.Chunks(oprf.MinChunkSize)
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) < 3 && s.Form() == oprf.Labeled {
			t.Errorf("%v: %d chunks, want several at the minimum chunk size", s.Form(), len(chunks))
		}
		for i, c := range chunks {
			if len(c) > oprf.MinChunkSize {
				t.Errorf("%v chunk %d is %d bytes, more than %d", s.Form(), i, len(c), oprf.MinChunkSize)
			}
		}
		got, err := oprf.DecodeSet(chunks, 0)
		if err != nil {
			t.Fatalf("%v: DecodeSet: %v", s.Form(), err)
		}
		if !sameContent(t, got, s) || got.Version() != s.Version() || got.Commitment() != s.Commitment() {
			t.Errorf("%v: decoded set differs", s.Form())
		}
		if _, err := oprf.DecodeSet(chunks[:len(chunks)-1], 0); err == nil {
			t.Errorf("%v: DecodeSet of a truncated stream succeeded", s.Form())
		}
		if _, err := oprf.DecodeSet(chunks, 100); err == nil {
			t.Errorf("%v: DecodeSet beyond maxItems succeeded", s.Form())
		}
	}
}

func TestEpochMarshal(t *testing.T) {
	ep := newEpoch(t, 42, 1000)
	b, err := ep.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := oprf.UnmarshalEpoch(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Commitment() != ep.Commitment() || got.Params() != ep.Params() {
		t.Errorf("UnmarshalEpoch = %v %v, want %v %v", got.Commitment(), got.Params(), ep.Commitment(), ep.Params())
	}
	if s := fmt.Sprint(ep); strings.Contains(s, fmt.Sprintf("%x", b[len(b)-32:])) {
		t.Errorf("String %q prints the key", s)
	}
	b[len(b)-1] ^= 0xff
	b[len(b)-2] ^= 0xff
	if _, err := oprf.UnmarshalEpoch(b[:10]); err == nil {
		t.Error("UnmarshalEpoch of a truncated key succeeded")
	}
	if _, err := oprf.NewEpoch(rand.Reader, 0, oprf.EpochConfig{ExpectedItems: 1}); err == nil {
		t.Error("NewEpoch with id 0 succeeded")
	}
}

func TestEncodeRefusesDuplicates(t *testing.T) {
	ep := newEpoch(t, 1, 10)
	items := append(listItems(0, 5), listItems(2, 3)...)
	if _, err := ep.Encode(items); !errors.Is(err, oprf.ErrDuplicate) {
		t.Errorf("Encode with a duplicate key: %v, want ErrDuplicate", err)
	}
}

func ExampleEpoch_Encode() {
	ep, _ := oprf.NewEpoch(rand.Reader, 1, oprf.EpochConfig{ExpectedItems: 2})
	enc, _ := ep.Encode([]oprf.Item{
		{Key: []byte("cn_id:110101199003074258"), Labels: []byte("level=high")},
		{Key: []byte("phone:13800138000"), Labels: []byte("level=low")},
	})
	fmt.Println(enc.Len(), enc.Version(), enc.Form())
	// Output: 2 1 labeled
}
