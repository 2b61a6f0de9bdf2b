package oprf_test

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"xnode/protocol/psi/oprf"
	"xnode/protocol/psi/oprf/pb"
)

func mustMarshal(t testing.TB, env *pb.Envelope) []byte {
	t.Helper()
	b, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func syncMsg(c oprf.Commitment, version uint64, kind string, objects uint32) *pb.Envelope {
	k := map[string]pb.SyncKind{"current": pb.SyncKind_SYNC_CURRENT, "full": pb.SyncKind_SYNC_FULL, "deltas": pb.SyncKind_SYNC_DELTAS}[kind]
	return &pb.Envelope{Body: &pb.Envelope_Sync{Sync: &pb.Sync{Epoch: c.Epoch, PublicKey: bytes.Clone(c.PublicKey[:]), Version: version, Kind: k, Objects: objects}}}
}

// pump delivers everything from's Next produces to to.
func pump(t testing.TB, from, to interface {
	Next() ([]byte, error)
	Deliver([]byte) error
}) {
	t.Helper()
	for {
		m, err := from.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			return
		}
		if err := to.Deliver(m); err != nil {
			t.Fatal(err)
		}
	}
}

// session is a querier that has synced and sent its first query of n
// identifiers, and a responder that has accepted the hello.
type session struct {
	ep    *oprf.Epoch
	q     *oprf.Querier
	r     *oprf.Responder
	query []byte
}

func newSession(t testing.TB, n int) *session {
	t.Helper()
	ep := newEpoch(t, 1, 20)
	enc := encode(t, ep, listItems(0, 20))
	q, err := oprf.NewQuerier(oprf.QuerierConfig{BatchSize: n, Window: 1}, ids(0, 2*n))
	if err != nil {
		t.Fatal(err)
	}
	r, err := oprf.NewResponder(oprf.ResponderConfig{Epoch: ep, Encoding: enc})
	if err != nil {
		t.Fatal(err)
	}
	hello, _ := q.Next()
	if err := r.Deliver(hello); err != nil {
		t.Fatal(err)
	}
	pump(t, r, q)
	query, err := q.Next()
	if err != nil || query == nil {
		t.Fatalf("querier Next = %v, %v; want a query", query, err)
	}
	return &session{ep: ep, q: q, r: r, query: query}
}

// answer has the responder evaluate the session's query.
func (s *session) answer(t testing.TB) *pb.Evaluated {
	t.Helper()
	if err := s.r.Deliver(s.query); err != nil {
		t.Fatal(err)
	}
	m, err := s.r.Next()
	if err != nil || m == nil {
		t.Fatalf("responder Next = %v, %v; want an evaluation", m, err)
	}
	env := new(pb.Envelope)
	if err := proto.Unmarshal(m, env); err != nil {
		t.Fatal(err)
	}
	return env.GetEvaluated()
}

func evaluatedMsg(t testing.TB, e *pb.Evaluated) []byte {
	return mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Evaluated{Evaluated: e}})
}

func TestWrongProofRejected(t *testing.T) {
	const n = 300 // two proof groups
	for name, alter := range map[string]func(e *pb.Evaluated){
		"flipped proof bit": func(e *pb.Evaluated) { e.Proofs[oprf.ProofSize+5] ^= 1 },
		"swapped proofs": func(e *pb.Evaluated) {
			e.Proofs = append(bytes.Clone(e.Proofs[oprf.ProofSize:]), e.Proofs[:oprf.ProofSize]...)
		},
		"swapped elements": func(e *pb.Evaluated) {
			a := bytes.Clone(e.Packed[:32])
			copy(e.Packed, e.Packed[32:64])
			copy(e.Packed[32:], a)
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := newSession(t, n)
			e := s.answer(t)
			if err := s.q.Deliver(evaluatedMsg(t, proto.Clone(e).(*pb.Evaluated))); err != nil {
				t.Fatalf("unaltered evaluation refused: %v", err)
			}
			s = newSession(t, n)
			e = s.answer(t)
			alter(e)
			if err := s.q.Deliver(evaluatedMsg(t, e)); !errors.Is(err, oprf.ErrProof) {
				t.Errorf("Deliver = %v, want ErrProof", err)
			}
		})
	}
	t.Run("another key", func(t *testing.T) {
		// A responder that evaluates this querier with a key other than the
		// committed one, with a proof valid for that other key.
		s := newSession(t, n)
		other := newSession(t, n)
		if err := other.r.Deliver(s.query); err != nil {
			t.Fatal(err)
		}
		m, err := other.r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.q.Deliver(m); !errors.Is(err, oprf.ErrProof) {
			t.Errorf("Deliver of another key's evaluation = %v, want ErrProof", err)
		}
	})
}

var (
	identity   = make([]byte, 32)
	nonCanon   = bytes.Repeat([]byte{0xff}, 32)                       // s ≥ p
	negative   = append([]byte{1}, make([]byte, 31)...)               // odd s: "negative", not canonical
	notOnCurve = append([]byte{2}, bytes.Repeat([]byte{0x11}, 31)...) // no square root
)

func TestResponderRefusesHostileQueries(t *testing.T) {
	const n = 8
	for name, mk := range map[string]func(q *pb.Query){
		"identity element":    func(q *pb.Query) { copy(q.Packed[32:], identity) },
		"non-canonical":       func(q *pb.Query) { copy(q.Packed[64:], nonCanon) },
		"negative encoding":   func(q *pb.Query) { copy(q.Packed[64:], negative) },
		"not an element":      func(q *pb.Query) { copy(q.Packed[:32], notOnCurve) },
		"too few elements":    func(q *pb.Query) { q.Packed = q.Packed[:len(q.Packed)-32] },
		"too many elements":   func(q *pb.Query) { q.Packed = append(q.Packed, q.Packed[:32]...) },
		"ragged":              func(q *pb.Query) { q.Packed = q.Packed[:len(q.Packed)-1] },
		"out of order":        func(q *pb.Query) { q.Seq = 1 },
		"empty":               func(q *pb.Query) { q.Packed = nil },
		"beyond the declared": func(q *pb.Query) {},
	} {
		t.Run(name, func(t *testing.T) {
			s := newSession(t, n)
			env := new(pb.Envelope)
			if err := proto.Unmarshal(s.query, env); err != nil {
				t.Fatal(err)
			}
			qm := env.GetQuery()
			if name == "beyond the declared" {
				s.answer(t)
				_, _ = s.r.Next()
				s.query = mustMarshal(t, env)
				qm2 := proto.Clone(qm).(*pb.Query)
				qm2.Seq = 1
				if err := s.r.Deliver(mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Query{Query: qm2}})); err != nil {
					t.Fatalf("second genuine-size query refused: %v", err)
				}
				qm = proto.Clone(qm).(*pb.Query)
				qm.Seq = 2
			} else {
				mk(qm)
			}
			err := s.r.Deliver(mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Query{Query: qm}}))
			if !errors.Is(err, oprf.ErrProtocol) {
				t.Errorf("Deliver = %v, want ErrProtocol", err)
			}
		})
	}
}

func TestResponderRefusesHostileHello(t *testing.T) {
	ep := newEpoch(t, 1, 5)
	enc := encode(t, ep, listItems(0, 5))
	for name, c := range map[string]struct {
		h    *pb.Hello
		want error
	}{
		"old version":   {&pb.Hello{Version: 9, Suite: oprf.SuiteName, Form: pb.Form_FORM_LABELED, Batch: 1}, oprf.ErrRefusedUnsupported},
		"other suite":   {&pb.Hello{Version: 1, Suite: "P256-SHA256", Form: pb.Form_FORM_LABELED, Batch: 1}, oprf.ErrRefusedUnsupported},
		"no form":       {&pb.Hello{Version: 1, Suite: oprf.SuiteName, Batch: 1}, oprf.ErrRefusedUnsupported},
		"huge count":    {&pb.Hello{Version: 1, Suite: oprf.SuiteName, Form: pb.Form_FORM_LABELED, Count: 1 << 40, Batch: 1}, oprf.ErrRefusedTooLarge},
		"huge batch":    {&pb.Hello{Version: 1, Suite: oprf.SuiteName, Form: pb.Form_FORM_LABELED, Count: 1, Batch: 1 << 30}, oprf.ErrRefusedTooLarge},
		"ragged pubkey": {&pb.Hello{Version: 1, Suite: oprf.SuiteName, Form: pb.Form_FORM_LABELED, Count: 1, Batch: 1, PublicKey: []byte{1, 2}}, oprf.ErrProtocol},
	} {
		t.Run(name, func(t *testing.T) {
			r, _ := oprf.NewResponder(oprf.ResponderConfig{Epoch: ep, Encoding: enc})
			err := r.Deliver(mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Hello{Hello: c.h}}))
			if err == nil {
				if m, _ := r.Next(); m != nil {
					env := new(pb.Envelope)
					_ = proto.Unmarshal(m, env)
					if env.GetRefuse() == nil {
						t.Fatalf("responder answered %T, want a refusal", env.Body)
					}
				}
				_, err = r.Result()
			}
			if !errors.Is(err, c.want) {
				t.Errorf("hello %s: %v, want %v", name, err, c.want)
			}
		})
	}
	r, _ := oprf.NewResponder(oprf.ResponderConfig{Epoch: ep, Encoding: enc})
	if err := r.Deliver(mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Query{Query: &pb.Query{}}})); !errors.Is(err, oprf.ErrProtocol) {
		t.Errorf("query before hello: %v, want ErrProtocol", err)
	}
}

// TestResponderHoldsQuerierToAgreedCount: with QuerierCount set, a Hello
// declaring any other number of identifiers is refused (a querier approved
// for 100 must not check 1), and the agreed count is taken.
func TestResponderHoldsQuerierToAgreedCount(t *testing.T) {
	ep := newEpoch(t, 1, 5)
	enc := encode(t, ep, listItems(0, 5))
	for _, tc := range []struct {
		declared uint64
		wantErr  error
	}{
		{1, oprf.ErrProtocol},
		{99, oprf.ErrProtocol},
		{101, oprf.ErrProtocol},
		{100, nil},
	} {
		r, err := oprf.NewResponder(oprf.ResponderConfig{Epoch: ep, Encoding: enc, QuerierCount: 100})
		if err != nil {
			t.Fatal(err)
		}
		hello := &pb.Hello{Version: oprf.Version, Suite: oprf.SuiteName, Form: pb.Form_FORM_LABELED, Count: tc.declared, Batch: 10}
		if err := r.Deliver(mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Hello{Hello: hello}})); !errors.Is(err, tc.wantErr) {
			t.Errorf("Deliver(hello of %d identifiers) with 100 agreed = %v, want %v", tc.declared, err, tc.wantErr)
		}
	}
}

func TestQuerierRefusesHostileMessages(t *testing.T) {
	const n = 8
	ep := newEpoch(t, 1, 5)
	for name, c := range map[string]func(s *session, e *pb.Evaluated) *pb.Envelope{
		"identity evaluation": func(_ *session, e *pb.Evaluated) *pb.Envelope { copy(e.Packed, identity); return nil },
		"non-canonical":       func(_ *session, e *pb.Evaluated) *pb.Envelope { copy(e.Packed[32:], nonCanon); return nil },
		"short":               func(_ *session, e *pb.Evaluated) *pb.Envelope { e.Packed = e.Packed[32:]; return nil },
		"no proof":            func(_ *session, e *pb.Evaluated) *pb.Envelope { e.Proofs = nil; return nil },
		"malformed proof":     func(_ *session, e *pb.Evaluated) *pb.Envelope { copy(e.Proofs, nonCanon); return nil },
		"out of order":        func(_ *session, e *pb.Evaluated) *pb.Envelope { e.Seq = 3; return nil },
		"second sync": func(s *session, _ *pb.Evaluated) *pb.Envelope {
			return syncMsg(ep.Commitment(), 1, "full", 1)
		},
		"chunk while querying": func(*session, *pb.Evaluated) *pb.Envelope {
			return &pb.Envelope{Body: &pb.Envelope_Chunk{Chunk: &pb.Chunk{}}}
		},
		"hello to the querier": func(*session, *pb.Evaluated) *pb.Envelope {
			return &pb.Envelope{Body: &pb.Envelope_Hello{Hello: &pb.Hello{}}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := newSession(t, n)
			e := s.answer(t)
			env := c(s, e)
			if env == nil {
				env = &pb.Envelope{Body: &pb.Envelope_Evaluated{Evaluated: e}}
			}
			if err := s.q.Deliver(mustMarshal(t, env)); !errors.Is(err, oprf.ErrProtocol) && !errors.Is(err, oprf.ErrProof) {
				t.Errorf("Deliver = %v, want ErrProtocol", err)
			}
		})
	}
	for name, env := range map[string]*pb.Envelope{
		"identity key":     {Body: &pb.Envelope_Sync{Sync: &pb.Sync{Epoch: 1, PublicKey: identity, Version: 1, Kind: pb.SyncKind_SYNC_FULL, Objects: 1}}},
		"no epoch":         syncMsg(oprf.Commitment{PublicKey: ep.Commitment().PublicKey}, 1, "full", 1),
		"two objects":      syncMsg(ep.Commitment(), 1, "full", 2),
		"deltas, no cache": syncMsg(ep.Commitment(), 2, "deltas", 1),
		"evaluation first": {Body: &pb.Envelope_Evaluated{Evaluated: &pb.Evaluated{}}},
		"garbage chunk":    nil,
	} {
		t.Run(name, func(t *testing.T) {
			q, _ := oprf.NewQuerier(oprf.QuerierConfig{}, ids(0, 3))
			_, _ = q.Next()
			var err error
			if env == nil {
				if err = q.Deliver(mustMarshal(t, syncMsg(ep.Commitment(), 1, "full", 1))); err != nil {
					t.Fatal(err)
				}
				err = q.Deliver(mustMarshal(t, &pb.Envelope{Body: &pb.Envelope_Chunk{Chunk: &pb.Chunk{Data: []byte("XPOS garbage")}}}))
			} else {
				err = q.Deliver(mustMarshal(t, env))
			}
			if !errors.Is(err, oprf.ErrProtocol) && !errors.Is(err, oprf.ErrStale) {
				t.Errorf("Deliver = %v, want ErrProtocol or ErrStale", err)
			}
		})
	}
	q, _ := oprf.NewQuerier(oprf.QuerierConfig{}, ids(0, 3))
	_, _ = q.Next()
	if err := q.Deliver([]byte{0xff, 0xff, 0xff}); !errors.Is(err, oprf.ErrProtocol) {
		t.Errorf("garbage frame: %v, want ErrProtocol", err)
	}
}

func FuzzDecoder(f *testing.F) {
	ep := newEpoch(f, 1, 40)
	enc := encode(f, ep, listItems(0, 40))
	_, d, _ := ep.Update(enc, oprf.Changes{Put: listItems(40, 45), Remove: ids(0, 3)})
	for _, s := range []interface{ Chunks(int) ([][]byte, error) }{enc, enc.Membership(), d} {
		chunks, _ := s.Chunks(oprf.MinChunkSize)
		f.Add(chunks[0], bytes.Join(chunks[1:], nil))
	}
	f.Fuzz(func(t *testing.T, head, body []byte) {
		for _, asDelta := range []bool{false, true} {
			dec := oprf.NewDecoder(1000)
			done, err := dec.Write(head)
			if err != nil {
				continue
			}
			if !done {
				if done, err = dec.Write(body); err != nil || !done {
					continue
				}
			}
			if asDelta {
				dd, err := dec.Delta()
				if err == nil {
					_, _ = enc.Apply(dd)
					_, _ = enc.Membership().Apply(dd)
				}
				continue
			}
			s, err := dec.Set()
			if err != nil {
				continue
			}
			// A decoded set re-serialises to what was decoded and answers lookups.
			chunks, err := s.Chunks(oprf.DefaultChunkSize)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(chunks[0], head) {
				t.Fatalf("header does not round-trip")
			}
			if _, _, err := s.Lookup(make([]byte, 64)); err != nil && !errors.Is(err, oprf.ErrProtocol) {
				t.Fatalf("Lookup on a decoded set: %v", err)
			}
		}
	})
}

func FuzzResponderDeliver(f *testing.F) {
	s := newSession(f, 4)
	hello := mustMarshal(f, &pb.Envelope{Body: &pb.Envelope_Hello{Hello: &pb.Hello{Version: 1, Suite: oprf.SuiteName, Form: pb.Form_FORM_LABELED, Count: 4, Batch: 4}}})
	f.Add(hello, s.query)
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ep := s.ep
		enc := encode(t, ep, nil)
		r, err := oprf.NewResponder(oprf.ResponderConfig{Epoch: ep, Encoding: enc})
		if err != nil {
			t.Fatal(err)
		}
		if r.Deliver(a) != nil {
			return
		}
		for {
			m, err := r.Next()
			if err != nil || m == nil {
				break
			}
		}
		_ = r.Deliver(b)
	})
}

func FuzzQuerierDeliver(f *testing.F) {
	s := newSession(f, 4)
	e := s.answer(f)
	f.Add(evaluatedMsg(f, e))
	f.Add(mustMarshal(f, &pb.Envelope{Body: &pb.Envelope_Refuse{Refuse: &pb.Refuse{Reason: pb.Reason_REASON_BUDGET}}}))
	f.Fuzz(func(t *testing.T, msg []byte) {
		q := newSession(t, 4).q
		_ = q.Deliver(msg)
	})
}
