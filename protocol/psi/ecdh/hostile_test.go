package ecdh_test

import (
	"errors"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	"xnode/crypto"
	"xnode/protocol"
	"xnode/protocol/psi/ecdh"
	"xnode/protocol/psi/ecdh/pb"
)

func mustMarshal(t testing.TB, env *pb.Envelope) []byte {
	t.Helper()
	b, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// acceptedResponder returns a responder that has taken a valid Hello for n
// querier items in batches of 4, and sent its Accept.
func acceptedResponder(t testing.TB, s crypto.Suite, mode ecdh.Mode, n int) *ecdh.Responder {
	t.Helper()
	cfg := config(s, mode, 4)
	q, err := ecdh.NewQuerier(cfg, ecdh.Slice(items("q", 0, n)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ecdh.NewResponder(cfg, ecdh.Slice(items("q", 0, 6)))
	if err != nil {
		t.Fatal(err)
	}
	hello, err := q.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Deliver(hello); err != nil {
		t.Fatal(err)
	}
	if msg, err := r.Next(); err != nil || msg == nil {
		t.Fatalf("responder Next after hello = %v, %v; want Accept", msg, err)
	}
	return r
}

// waitingQuerier returns a querier that has sent its Hello and got an Accept
// for m responder items, and sent its one query batch.
func waitingQuerier(t testing.TB, s crypto.Suite, mode ecdh.Mode, m int) *ecdh.Querier {
	t.Helper()
	cfg := config(s, mode, 4)
	q, err := ecdh.NewQuerier(cfg, ecdh.Slice(items("q", 0, 4)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Next(); err != nil {
		t.Fatal(err)
	}
	if err := q.Deliver(mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Accept{Accept: &pb.Accept{Size: uint64(m)}}})); err != nil {
		t.Fatal(err)
	}
	if msg, err := q.Next(); err != nil || msg == nil {
		t.Fatalf("querier Next after accept = %v, %v; want a query batch", msg, err)
	}
	return q
}

func validElements(t testing.TB, s crypto.Suite, k int) []byte {
	t.Helper()
	cfg := config(s, ecdh.Intersection, 4)
	q, _ := ecdh.NewQuerier(cfg, ecdh.Slice(items("v", 0, k)))
	_, _ = q.Next()
	_ = q.Deliver(mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Accept{Accept: &pb.Accept{Size: 0}}}))
	msg, _ := q.Next()
	env := new(pb.Envelope)
	if err := proto.Unmarshal(msg, env); err != nil {
		t.Fatal(err)
	}
	return env.GetQuery().Packed
}

func TestResponderRefusesHostileQueries(t *testing.T) {
	for _, s := range suites(t) {
		t.Run(s.Name(), func(t *testing.T) { testResponderRefusesHostileQueries(t, s) })
	}
}

func testResponderRefusesHostileQueries(t *testing.T, s crypto.Suite) {
	n := s.ElementSize()
	good := validElements(t, s, 4)
	// All-zero bytes: the ristretto255 identity, the X25519 u = 0 (order 2),
	// and no P-256 encoding at all.
	identity := make([]byte, n)
	bad := append([]byte(nil), good...)
	copy(bad[n:2*n], identity)
	nonCanonical := append([]byte(nil), good...)
	for i := n; i < 2*n; i++ {
		nonCanonical[i] = 0xff
	}
	query := func(seq uint64, packed []byte) []byte {
		return mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Query{Query: &pb.Elements{Seq: seq, Packed: packed}}})
	}
	cases := []struct {
		name string
		msg  []byte
	}{
		{"garbage", []byte{0xff, 0x01, 0x02}},
		{"empty envelope", mustMarshal(t, &pb.Envelope{})},
		{"oversized", make([]byte, protocol.MaxMessageSize+1)},
		{"identity element", query(0, bad)},
		{"non-canonical element", query(0, nonCanonical)},
		{"wrong sequence", query(1, good)},
		{"short batch", query(0, good[:2*n])},
		{"ragged batch", query(0, good[:2*n+6])},
		{"wrong message type", mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Accept{Accept: &pb.Accept{Size: 1}}})},
		{"second hello", mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Hello{Hello: &pb.Hello{Version: 1}}})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := acceptedResponder(t, s, ecdh.Intersection, 8)
			err := r.Deliver(tc.msg)
			if !errors.Is(err, ecdh.ErrProtocol) {
				t.Fatalf("Deliver = %v, want ErrProtocol", err)
			}
			if _, err2 := r.Next(); err2 == nil {
				t.Error("responder went on after a protocol violation")
			}
		})
	}
}

func TestResponderRefusesHostileHello(t *testing.T) {
	for _, s := range suites(t) {
		t.Run(s.Name(), func(t *testing.T) { testResponderRefusesHostileHello(t, s) })
	}
}

func testResponderRefusesHostileHello(t *testing.T, s crypto.Suite) {
	hello := func(h *pb.Hello) []byte {
		h.Version, h.Suite, h.Mode, h.Session = 1, s.Name(), pb.Mode_MODE_INTERSECTION, []byte("test-session")
		return mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Hello{Hello: h}})
	}
	cases := []struct {
		name string
		msg  []byte
	}{
		{"huge set", hello(&pb.Hello{Size: 1 << 40, Batch: 4})},
		{"zero batch", hello(&pb.Hello{Size: 4})},
		{"huge batch", hello(&pb.Hello{Size: 4, Batch: ecdh.MaxBatchSize + 1})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ecdh.NewResponder(config(s, ecdh.Intersection, 4), ecdh.Slice(nil))
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Deliver(tc.msg); !errors.Is(err, ecdh.ErrProtocol) {
				t.Errorf("Deliver = %v, want ErrProtocol", err)
			}
		})
	}
}

// TestResponderHoldsQuerierToAgreedSize: with QuerierSize set, a Hello
// declaring any other set size is refused (a querier approved for 100 items
// must not run 1), and the agreed size is taken.
func TestResponderHoldsQuerierToAgreedSize(t *testing.T) {
	s := suites(t)[0]
	for _, tc := range []struct {
		declared uint64
		wantErr  error
	}{
		{1, ecdh.ErrMismatch},
		{99, ecdh.ErrMismatch},
		{101, ecdh.ErrMismatch},
		{100, nil},
	} {
		cfg := config(s, ecdh.Intersection, 4)
		cfg.QuerierSize = 100
		r, err := ecdh.NewResponder(cfg, ecdh.Slice(nil))
		if err != nil {
			t.Fatal(err)
		}
		hello := mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Hello{Hello: &pb.Hello{
			Version: 1, Suite: s.Name(), Mode: pb.Mode_MODE_INTERSECTION, Session: []byte("test-session"), Size: tc.declared, Batch: 4,
		}}})
		if err := r.Deliver(hello); !errors.Is(err, tc.wantErr) {
			t.Errorf("Deliver(hello of %d items) with 100 agreed = %v, want %v", tc.declared, err, tc.wantErr)
		}
	}
}

func TestQuerierRefusesHostileReplies(t *testing.T) {
	for _, s := range suites(t) {
		t.Run(s.Name(), func(t *testing.T) { testQuerierRefusesHostileReplies(t, s) })
	}
}

func testQuerierRefusesHostileReplies(t *testing.T, s crypto.Suite) {
	n := s.ElementSize()
	reply := func(seq uint64, k int) []byte {
		return mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Reply{Reply: &pb.Digests{Seq: seq, Packed: make([]byte, k*ecdh.DigestSize)}}})
	}
	peer := func(packed []byte) []byte {
		return mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Peer{Peer: &pb.Elements{Packed: packed}}})
	}
	cases := []struct {
		name  string
		setup []byte // delivered first, must succeed
		msg   []byte
	}{
		{"reply too short", nil, reply(0, 3)},
		{"reply too long", nil, reply(0, 5)},
		{"reply out of order", nil, reply(1, 4)},
		{"peer before replies", nil, peer(validElements(t, s, 2))},
		{"peer identity element", reply(0, 4), peer(make([]byte, 2*n))},
		{"peer beyond declared size", reply(0, 4), peer(validElements(t, s, 4))},
		{"peer ragged", reply(0, 4), peer(validElements(t, s, 2)[:n+8])},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := waitingQuerier(t, s, ecdh.Intersection, 3)
			if tc.setup != nil {
				if err := q.Deliver(tc.setup); err != nil {
					t.Fatalf("setup Deliver: %v", err)
				}
			}
			if err := q.Deliver(tc.msg); !errors.Is(err, ecdh.ErrProtocol) {
				t.Errorf("Deliver = %v, want ErrProtocol", err)
			}
		})
	}
	t.Run("accept beyond limit", func(t *testing.T) {
		cfg := config(s, ecdh.Intersection, 4)
		cfg.MaxPeerSize = 10
		q, _ := ecdh.NewQuerier(cfg, ecdh.Slice(nil))
		_, _ = q.Next()
		err := q.Deliver(mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Accept{Accept: &pb.Accept{Size: 11}}}))
		if !errors.Is(err, ecdh.ErrProtocol) {
			t.Errorf("Deliver(accept 11 > limit 10) = %v, want ErrProtocol", err)
		}
	})
}

func TestResponderRefusesHostileMatches(t *testing.T) {
	for _, s := range suites(t) {
		t.Run(s.Name(), func(t *testing.T) { testResponderRefusesHostileMatches(t, s) })
	}
}

func testResponderRefusesHostileMatches(t *testing.T, s crypto.Suite) {
	matches := func(pos ...uint64) []byte {
		return mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Matches{Matches: &pb.Matches{Positions: pos, Last: true}}})
	}
	cases := []struct {
		name string
		msg  []byte
	}{
		{"beyond set", matches(6)},
		{"descending", matches(3, 1)},
		{"repeated", matches(2, 2)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := acceptedResponder(t, s, ecdh.IntersectionBoth, 0)
			for {
				msg, err := r.Next()
				if err != nil {
					t.Fatal(err)
				}
				if msg == nil {
					break
				}
			}
			if err := r.Deliver(tc.msg); !errors.Is(err, ecdh.ErrProtocol) {
				t.Errorf("Deliver = %v, want ErrProtocol", err)
			}
		})
	}
}

// FuzzResponderDeliver feeds arbitrary frames to a responder in each state a
// peer can reach: no input may panic it.
func FuzzResponderDeliver(f *testing.F) {
	f.Add([]byte{})
	f.Add(mustMarshal(f, &pb.Envelope{Body: &pb.Envelope_Query{Query: &pb.Elements{Packed: make([]byte, 128)}}}))
	for _, s := range suites(f) {
		f.Add(mustMarshal(f, &pb.Envelope{Body: &pb.Envelope_Hello{Hello: &pb.Hello{Version: 1, Suite: s.Name(), Mode: 1, Session: []byte("test-session"), Size: 3, Batch: 4}}}))
	}
	f.Add(mustMarshal(f, &pb.Envelope{Body: &pb.Envelope_Matches{Matches: &pb.Matches{Positions: []uint64{1, 2}, Last: true}}}))
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, s := range suites(t) {
			fresh, err := ecdh.NewResponder(config(s, ecdh.Intersection, 4), ecdh.Slice(items("q", 0, 3)))
			if err != nil {
				t.Fatal(err)
			}
			_ = fresh.Deliver(msg)
			_ = acceptedResponder(t, s, ecdh.IntersectionBoth, 4).Deliver(msg)
		}
	})
}

// FuzzQuerierDeliver feeds arbitrary frames to a querier waiting for replies.
func FuzzQuerierDeliver(f *testing.F) {
	f.Add([]byte{})
	f.Add(mustMarshal(f, &pb.Envelope{Body: &pb.Envelope_Reply{Reply: &pb.Digests{Packed: make([]byte, 64)}}}))
	f.Add(mustMarshal(f, &pb.Envelope{Body: &pb.Envelope_Peer{Peer: &pb.Elements{Packed: make([]byte, 64)}}}))
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, s := range suites(t) {
			q := waitingQuerier(t, s, ecdh.Intersection, 3)
			if err := q.Deliver(msg); err == nil {
				// Only a well-formed reply to the outstanding batch may pass.
				env := new(pb.Envelope)
				if proto.Unmarshal(msg, env) != nil || env.GetReply() == nil {
					t.Errorf("%s: querier accepted %x", s.Name(), msg)
				}
			}
		}
	})
}

// TestHugeDeclaredSetAllocatesNothing: a Hello declaring the largest set
// the responder accepts must not make it reserve memory for that set.
func TestHugeDeclaredSetAllocatesNothing(t *testing.T) {
	s := suites(t)[0]
	r, err := ecdh.NewResponder(config(s, ecdh.Cardinality, 4), ecdh.Slice(nil))
	if err != nil {
		t.Fatal(err)
	}
	hello := mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Hello{Hello: &pb.Hello{
		Version: 1, Suite: s.Name(), Mode: pb.Mode_MODE_CARDINALITY, Session: []byte("test-session"),
		Size: ecdh.DefaultMaxPeerSize, Batch: 4,
	}}})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := r.Deliver(hello); err != nil {
		t.Fatalf("Deliver(hello of %d items) = %v", ecdh.DefaultMaxPeerSize, err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("a Hello declaring %d items made the responder allocate %d MiB", ecdh.DefaultMaxPeerSize, grew>>20)
	}
}
