package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"xnode/node/audit"
	"xnode/node/identity"
	"xnode/node/store"
)

type fixture struct {
	path string
	st   *store.Store
	id   *identity.Identity
	log  *audit.Log
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	id, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{path: filepath.Join(t.TempDir(), "store.db"), id: id}
	f.open(t)
	t.Cleanup(func() {
		if f.st != nil {
			f.st.Close()
		}
	})
	return f
}

func (f *fixture) open(t *testing.T) {
	t.Helper()
	st, err := store.Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	f.st, f.log = st, audit.New(st, f.id, nil)
}

func (f *fixture) close(t *testing.T) {
	t.Helper()
	if err := f.st.Check(); err != nil {
		t.Errorf("store check: %v", err)
	}
	if err := f.st.Close(); err != nil {
		t.Fatal(err)
	}
	f.st = nil
}

// rawEdit closes the store, changes the audit bucket directly in the bbolt
// file, as an attacker with the file would, and reopens the store.
func (f *fixture) rawEdit(t *testing.T, fn func(b *bolt.Bucket) error) {
	t.Helper()
	f.close(t)
	db, err := bolt.Open(f.path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket([]byte(store.Audit))) }); err != nil {
		t.Fatalf("raw edit: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
}

func (f *fixture) appendN(t *testing.T, n int) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for i := range n {
		d, err := audit.Details(map[string]any{"i": i, "dataset": "customers", "version": 3})
		if err != nil {
			t.Fatal(err)
		}
		e, err := f.log.Append(context.Background(), audit.Entry{
			Kind: audit.KindRun, QueryID: fmt.Sprintf("q%d", i%3), Actor: audit.ActorLocal, Details: d,
		})
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out = append(out, e)
	}
	return out
}

func key(seq uint64) []byte { return store.EncodeUint64(seq) }

func TestAppendLinksAndSigns(t *testing.T) {
	f := newFixture(t)
	es := f.appendN(t, 4)
	prev := make([]byte, 32)
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			t.Errorf("entry %d has Seq %d, want %d", i, e.Seq, i+1)
		}
		if !bytes.Equal(e.Prev, prev) {
			t.Errorf("entry %d Prev = %x, want %x", e.Seq, e.Prev, prev)
		}
		if !bytes.Equal(e.Hash, e.ComputeHash()) {
			t.Errorf("entry %d Hash does not match ComputeHash", e.Seq)
		}
		if e.Signer != f.id.ID().String() {
			t.Errorf("entry %d Signer = %s, want %s", e.Seq, e.Signer, f.id.ID())
		}
		if e.Time.IsZero() || e.Time.Location() != time.UTC {
			t.Errorf("entry %d Time = %v, want a UTC time", e.Seq, e.Time)
		}
		prev = e.Hash
	}
	got, err := f.log.List(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(es) {
		t.Fatalf("List returned %d entries, want %d", len(got), len(es))
	}
	for i := range got {
		if !got[i].Time.Equal(es[i].Time) || !bytes.Equal(got[i].Hash, es[i].Hash) || !bytes.Equal(got[i].Details, es[i].Details) {
			t.Errorf("List()[%d] = %+v, want %+v", i, got[i], es[i])
		}
	}
}

func TestAppendRefuses(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		e    audit.Entry
	}{
		{"empty kind", audit.Entry{Actor: "local"}},
		{"upper-case kind", audit.Entry{Kind: "Run", Actor: "local"}},
		{"kind with space", audit.Entry{Kind: "a run", Actor: "local"}},
		{"no actor", audit.Entry{Kind: audit.KindRun}},
		{"details not JSON", audit.Entry{Kind: audit.KindRun, Actor: "local", Details: []byte("{")}},
		{"details an array", audit.Entry{Kind: audit.KindRun, Actor: "local", Details: []byte("[1]")}},
		{"two values", audit.Entry{Kind: audit.KindRun, Actor: "local", Details: []byte("{} {}")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.log.Append(context.Background(), tt.e)
			if !errors.Is(err, audit.ErrInvalidEntry) {
				t.Errorf("Append(%+v) error = %v, want ErrInvalidEntry", tt.e, err)
			}
		})
	}
	if got, _ := f.log.List(context.Background(), audit.Filter{}); len(got) != 0 {
		t.Errorf("refused appends left %d entries", len(got))
	}
}

func TestDetailsCanonical(t *testing.T) {
	f := newFixture(t)
	a, err := f.log.Append(context.Background(), audit.Entry{Kind: "custom-event", Actor: "local",
		Details: []byte(`{ "b": 1.50, "a": {"y": "<x&y>", "x": [2, 1]} }`)})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"a":{"x":[2,1],"y":"<x&y>"},"b":1.50}`
	if string(a.Details) != want {
		t.Errorf("stored details = %s, want %s", a.Details, want)
	}
	d, err := audit.Details(struct {
		B string `json:"b"`
		A int    `json:"a"`
	}{"<", 1})
	if err != nil {
		t.Fatal(err)
	}
	if string(d) != `{"a":1,"b":"<"}` {
		t.Errorf("Details(struct) = %s, want sorted keys without HTML escapes", d)
	}
}

func TestListFilter(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	kinds := []audit.Kind{audit.KindProposal, audit.KindApproval, audit.KindRun, audit.KindResult, audit.KindImport, audit.KindProposal}
	qids := []string{"q1", "q1", "q1", "q1", "", "q2"}
	for i := range kinds {
		if _, err := f.log.Append(ctx, audit.Entry{Kind: kinds[i], QueryID: qids[i], Actor: "bank-b",
			Time: base.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		filter audit.Filter
		want   []uint64
	}{
		{"all", audit.Filter{}, []uint64{1, 2, 3, 4, 5, 6}},
		{"query", audit.Filter{QueryID: "q1"}, []uint64{1, 2, 3, 4}},
		{"kind", audit.Filter{Kind: audit.KindProposal}, []uint64{1, 6}},
		{"query and kind", audit.Filter{QueryID: "q2", Kind: audit.KindProposal}, []uint64{6}},
		{"since", audit.Filter{Since: base.Add(4 * time.Hour)}, []uint64{5, 6}},
		{"limit", audit.Filter{Limit: 2}, []uint64{1, 2}},
		{"tail", audit.Filter{Limit: 2, Tail: true}, []uint64{5, 6}},
		{"query tail", audit.Filter{QueryID: "q1", Limit: 3, Tail: true}, []uint64{2, 3, 4}},
		{"after", audit.Filter{AfterSeq: 4}, []uint64{5, 6}},
		{"nothing", audit.Filter{QueryID: "nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.log.List(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, e := range got {
				seqs = append(seqs, e.Seq)
			}
			if fmt.Sprint(seqs) != fmt.Sprint(tt.want) {
				t.Errorf("List(%+v) = %v, want %v", tt.filter, seqs, tt.want)
			}
		})
	}
}

func TestVerifyGoodChain(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rep, err := f.log.Verify(ctx)
	if err != nil || !rep.OK || rep.Entries != 0 {
		t.Errorf("Verify(empty) = %+v, %v; want OK with 0 entries", rep, err)
	}
	es := f.appendN(t, 5)
	f.close(t)
	f.open(t)
	rep, err = f.log.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Entries != 5 || rep.Err() != nil {
		t.Errorf("Verify = %+v, want OK with 5 entries", rep)
	}
	if want := fmt.Sprintf("%x", es[4].Hash); rep.Head != want {
		t.Errorf("Verify head = %s, want %s", rep.Head, want)
	}
	// The chain continues across a reopen.
	e, err := f.log.Append(ctx, audit.Entry{Kind: audit.KindDrop, Actor: audit.ActorLocal})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 6 || !bytes.Equal(e.Prev, es[4].Hash) {
		t.Errorf("append after reopen: seq %d prev %x, want 6 and %x", e.Seq, e.Prev, es[4].Hash)
	}
}

// editEntry rewrites the stored JSON of entry seq with fn.
func editEntry(seq uint64, fn func(e map[string]any)) func(b *bolt.Bucket) error {
	return func(b *bolt.Bucket) error {
		var m map[string]any
		if err := json.Unmarshal(b.Get(key(seq)), &m); err != nil {
			return err
		}
		fn(m)
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return b.Put(key(seq), v)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	other, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		edit    func(b *bolt.Bucket) error
		seq     uint64
		problem audit.Problem
	}{
		{"bytes edited in place", func(b *bolt.Bucket) error {
			v := bytes.Replace(b.Get(key(3)), []byte(`"actor":"local"`), []byte(`"actor":"LOCAL"`), 1)
			return b.Put(key(3), v)
		}, 3, audit.ProblemHash},
		{"details edited", editEntry(4, func(e map[string]any) {
			e["details"] = map[string]any{"dataset": "other", "i": 3, "version": 3}
		}), 4, audit.ProblemHash},
		{"garbage", func(b *bolt.Bucket) error { return b.Put(key(2), []byte("not json")) }, 2, audit.ProblemUnreadable},
		{"entry deleted", func(b *bolt.Bucket) error { return b.Delete(key(3)) }, 4, audit.ProblemGap},
		{"first entry deleted", func(b *bolt.Bucket) error { return b.Delete(key(1)) }, 2, audit.ProblemGap},
		{"last entry deleted", func(b *bolt.Bucket) error { return b.Delete(key(5)) }, 5, audit.ProblemTruncated},
		{"head deleted", func(b *bolt.Bucket) error { return b.Delete([]byte{0}) }, 5, audit.ProblemHeadSig},
		{"entries swapped", func(b *bolt.Bucket) error {
			v2, v3 := bytes.Clone(b.Get(key(2))), bytes.Clone(b.Get(key(3)))
			if err := b.Put(key(2), v3); err != nil {
				return err
			}
			return b.Put(key(3), v2)
		}, 2, audit.ProblemWrongKey},
		{"entries renumbered", func(b *bolt.Bucket) error {
			// Swap 2 and 3 and fix their seq fields: hashes no longer match.
			v2, v3 := bytes.Clone(b.Get(key(2))), bytes.Clone(b.Get(key(3)))
			v2 = bytes.Replace(v2, []byte(`"seq":2`), []byte(`"seq":3`), 1)
			v3 = bytes.Replace(v3, []byte(`"seq":3`), []byte(`"seq":2`), 1)
			if err := b.Put(key(2), v3); err != nil {
				return err
			}
			return b.Put(key(3), v2)
		}, 2, audit.ProblemHash},
		{"re-hashed without the key", editEntry(3, func(e map[string]any) {
			e["actor"] = "mallory"
			reHash(e, nil)
		}), 3, audit.ProblemSignature},
		{"re-signed by another key", editEntry(3, func(e map[string]any) {
			e["actor"] = "mallory"
			reHash(e, other)
		}), 3, audit.ProblemSignature},
		{"stray key", func(b *bolt.Bucket) error { return b.Put([]byte("zz"), []byte("{}")) }, 6, audit.ProblemStrayKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.appendN(t, 5)
			f.rawEdit(t, tt.edit)
			rep, err := f.log.Verify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.FirstBad == nil {
				t.Fatalf("Verify = %+v, want entry %d reported as %q", rep, tt.seq, tt.problem)
			}
			if rep.FirstBad.Seq != tt.seq || rep.FirstBad.Problem != tt.problem {
				t.Errorf("Verify first bad = %s, want entry %d: %s", rep.FirstBad, tt.seq, tt.problem)
			}
			if err := rep.Err(); !errors.Is(err, audit.ErrChainBroken) {
				t.Errorf("Report.Err() = %v, want ErrChainBroken", err)
			}
		})
	}
}

// reHash recomputes an edited entry's hash and, given a key, signs it.
func reHash(m map[string]any, signer *identity.Identity) {
	b, _ := json.Marshal(m)
	var e audit.Entry
	_ = json.Unmarshal(b, &e)
	e.Hash = e.ComputeHash()
	m["hash"] = e.Hash
	if signer != nil {
		m["sig"] = signer.Sign(e.Hash)
	}
}

func TestVerifyAnotherNodesEntry(t *testing.T) {
	f := newFixture(t)
	f.appendN(t, 3)
	other, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another key appending to this node's store makes a well-formed entry
	// in the wrong name.
	if _, err := audit.New(f.st, other, nil).Append(context.Background(), audit.Entry{Kind: audit.KindRun, Actor: "local"}); err != nil {
		t.Fatal(err)
	}
	rep, err := f.log.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.FirstBad.Seq != 4 || rep.FirstBad.Problem != audit.ProblemSigner {
		t.Errorf("Verify = %+v (%v), want entry 4: %s", rep, rep.FirstBad, audit.ProblemSigner)
	}
}

func TestExportRoundTrip(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.appendN(t, 300) // more than one export block
	var buf bytes.Buffer
	if err := f.log.Export(ctx, &buf, audit.FormatJSONL); err != nil {
		t.Fatal(err)
	}
	if err := f.log.Export(ctx, &bytes.Buffer{}, "csv"); err == nil {
		t.Error("Export(csv) succeeded, want an unknown-format error")
	}
	if n := bytes.Count(buf.Bytes(), []byte("\n")); n != 300 {
		t.Errorf("export has %d lines, want 300", n)
	}
	got, err := audit.ReadJSONL(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.log.List(ctx, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read back %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || !got[i].Time.Equal(want[i].Time) || !bytes.Equal(got[i].Hash, want[i].Hash) ||
			!bytes.Equal(got[i].Details, want[i].Details) || !bytes.Equal(got[i].Sig, want[i].Sig) {
			t.Fatalf("entry %d read back as %+v, want %+v", i+1, got[i], want[i])
		}
	}
	rep := audit.VerifyEntries(got, f.id.PublicKey())
	local, _ := f.log.Verify(ctx)
	if !rep.OK || rep.Entries != 300 || rep.Head != local.Head {
		t.Errorf("VerifyEntries(export) = %+v, want OK, 300 entries, head %s", rep, local.Head)
	}

	other, _ := identity.Generate(nil)
	if rep := audit.VerifyEntries(got, other.PublicKey()); rep.OK || rep.FirstBad.Seq != 1 || rep.FirstBad.Problem != audit.ProblemSignature {
		t.Errorf("VerifyEntries(other key) = %+v, want entry 1: bad signature", rep)
	}
	edited := bytes.Replace(buf.Bytes(), []byte(`"query_id":"q1"`), []byte(`"query_id":"q9"`), 1)
	tampered, err := audit.ReadJSONL(bytes.NewReader(edited))
	if err != nil {
		t.Fatal(err)
	}
	if rep := audit.VerifyEntries(tampered, f.id.PublicKey()); rep.OK || rep.FirstBad.Seq != 2 || rep.FirstBad.Problem != audit.ProblemHash {
		t.Errorf("VerifyEntries(edited export) = %+v, want entry 2: hash mismatch", rep)
	}
	if rep := audit.VerifyEntries(append(got[:10:10], got[11:]...), f.id.PublicKey()); rep.OK || rep.FirstBad.Seq != 12 {
		t.Errorf("VerifyEntries(entry 11 dropped) = %+v, want entry 12 reported", rep)
	}
}

func TestConcurrentAppends(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				_, err := f.log.Append(ctx, audit.Entry{Kind: audit.KindProposal, Actor: fmt.Sprintf("peer-%d", w),
					QueryID: fmt.Sprintf("q-%d-%d", w, i)})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rep, err := f.log.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Entries != workers*each {
		t.Errorf("Verify after concurrent appends = %+v (%v), want OK with %d entries", rep, rep.FirstBad, workers*each)
	}
}

func TestAppendCancelled(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.log.Append(ctx, audit.Entry{Kind: audit.KindRun, Actor: "local"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Append(cancelled) = %v, want context.Canceled", err)
	}
}
