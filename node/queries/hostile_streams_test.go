package queries_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"xnode/crypto"
	"xnode/node/api"
	"xnode/node/identity"
	"xnode/node/queries"
	"xnode/node/queries/pb"
	"xnode/protocol"
	"xnode/protocol/psi/ecdh"
	ecdhpb "xnode/protocol/psi/ecdh/pb"
	"xnode/protocol/psi/oprf"
	oprfpb "xnode/protocol/psi/oprf/pb"
	"xnode/protocol/secagg"
	secaggpb "xnode/protocol/secagg/pb"
)

// Bad group elements of 32 bytes. All zeros is the ristretto255 identity
// and the X25519 u = 0 (a point of order 2); x25519NonCanonical is
// p = 2^255 − 19, a non-canonical encoding of u = 0; all 0xff is a
// non-canonical ristretto255 encoding.
var (
	zeroElement        = make([]byte, 32)
	x25519NonCanonical = append(append([]byte{0xed}, slices.Repeat([]byte{0xff}, 30)...), 0x7f)
	ffElement          = slices.Repeat([]byte{0xff}, 32)
)

// hostileCase is one thing a hostile member does on a protocol stream after
// the node agreed to run an approved query, and the reason the node's
// record of the query must give for failing.
type hostileCase struct {
	name string
	// play misbehaves on r; opened is what the node sent first, if the
	// protocol has it speak first.
	play func(t *testing.T, id string, r *rawSession, opened []byte)
	want string
}

// truncate writes the first half of msg behind a prefix announcing all of
// it, then closes the stream for writing.
func truncate(t *testing.T, r *rawSession, msg []byte) {
	t.Helper()
	r.write(frame(uint64(len(msg)), msg[:len(msg)/2]))
	r.closeWrite()
}

// framingCases are the hostile inputs every stream refuses the same way.
func framingCases(first func(t *testing.T, id string) []byte) []hostileCase {
	return []hostileCase{
		{"malformed bytes", func(t *testing.T, _ string, r *rawSession, _ []byte) { r.send([]byte{0xff, 0xff, 0x01}) }, "malformed"},
		{"oversized length prefix", func(t *testing.T, _ string, r *rawSession, _ []byte) {
			r.write(binary.AppendUvarint(nil, protocol.MaxMessageSize+1))
		}, "too large"},
		{"truncated message, then close", func(t *testing.T, id string, r *rawSession, _ []byte) { truncate(t, r, first(t, id)) }, "unexpected EOF"},
	}
}

// playHostile runs each case on a fresh approved query of node over
// protocol id: the node must end the stream and record the query failed
// for the case's reason. opening, if set, reads what the node sends first.
func playHostile(t *testing.T, c *consortium, rogue, node *member, id libp2pproto.ID, approve func(t *testing.T) string,
	opening func(t *testing.T, r *rawSession) []byte, cases []hostileCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			qid := approve(t)
			r := openRaw(t, c, rogue, node.host.ID(), id)
			r.run(qid)
			var opened []byte
			if opening != nil {
				opened = opening(t, r)
			}
			tc.play(t, qid, r, opened)
			r.ended()
			rec := wait(t, node, qid, api.Finished)
			if rec.Status != api.StatusFailed || !strings.Contains(rec.Error, tc.want) {
				t.Errorf("%s's record after %s = %s %q, want failed with %q", node.name, tc.name, rec.Status, rec.Error, tc.want)
			}
		})
	}
}

func next(t *testing.T, m interface{ Next() ([]byte, error) }) []byte {
	t.Helper()
	msg, err := m.Next()
	if err != nil || msg == nil {
		t.Fatalf("%T.Next() = %v, %v; want a message", m, msg, err)
	}
	return msg
}

func keys(lo, hi int) [][]byte {
	var out [][]byte
	for _, id := range idRange(lo, hi) {
		out = append(out, []byte("cn_id:"+id))
	}
	return out
}

// TestHostileECDHStream: a member with an approved overlap query sends the
// node's ECDH-PSI responder malformed, oversized, truncated, replayed and
// out-of-order messages, identity and non-canonical elements, a Hello of
// another suite and one declaring fewer items than it proposed. Each is
// refused — the node ends the stream and records the query failed with the
// reason — and the node still answers a genuine query afterwards.
func TestHostileECDHStream(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 200)}})
	b := c.member("bank-b", memDatasets{"clients": {ids: idRange(100, 300)}})
	rogue := c.member("rogue", memDatasets{"clients": {ids: idRange(0, 200)}})
	connect(t, a, b)
	connect(t, rogue, b)
	bid := c.peers["bank-b"]
	x25519, err := crypto.Lookup(crypto.X25519Elligator2)
	if err != nil {
		t.Fatal(err)
	}
	ristretto, err := crypto.Lookup("ristretto255-sha512")
	if err != nil {
		t.Fatal(err)
	}
	// querier is the protocol package's querier for query id with n items
	// (the signed proposals say 100), in batches of 50.
	querier := func(t *testing.T, id string, s crypto.Suite, n int) *ecdh.Querier {
		t.Helper()
		q, err := ecdh.NewQuerier(ecdh.Config{Suite: s, Mode: ecdh.Cardinality, Session: queries.SessionID(id, rogue.host.ID(), bid), BatchSize: 50}, ecdh.Slice(keys(0, n)))
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	hello := func(t *testing.T, id string) []byte { return next(t, querier(t, id, x25519, 100)) }
	// accepted sends q's Hello, hands it the node's Accept and returns its
	// first query batch.
	accepted := func(t *testing.T, r *rawSession, q *ecdh.Querier) []byte {
		t.Helper()
		r.send(next(t, q))
		if err := q.Deliver(r.recv()); err != nil {
			t.Fatalf("the node's Accept: %v", err)
		}
		return next(t, q)
	}
	// withElement returns batch with element i replaced.
	withElement := func(t *testing.T, batch []byte, i int, elem []byte) []byte {
		t.Helper()
		env := new(ecdhpb.Envelope)
		if err := proto.Unmarshal(batch, env); err != nil {
			t.Fatal(err)
		}
		copy(env.GetQuery().Packed[i*32:], elem)
		return marshal(t, env)
	}
	cases := append(framingCases(hello),
		hostileCase{"query batch before the hello", func(t *testing.T, id string, r *rawSession, opened []byte) {
			q := querier(t, id, x25519, 100)
			next(t, q)
			if err := q.Deliver(marshal(t, &ecdhpb.Envelope{Body: &ecdhpb.Envelope_Accept{Accept: &ecdhpb.Accept{Size: 200}}})); err != nil {
				t.Fatal(err)
			}
			r.send(next(t, q))
		}, "unexpected"},
		hostileCase{"replayed query batch", func(t *testing.T, id string, r *rawSession, opened []byte) {
			batch := accepted(t, r, querier(t, id, x25519, 100))
			r.send(batch)
			r.send(batch)
		}, "query batch 0, want 1"},
		hostileCase{"identity element", func(t *testing.T, id string, r *rawSession, opened []byte) {
			r.send(withElement(t, accepted(t, r, querier(t, id, x25519, 100)), 7, zeroElement))
		}, "query element 7"},
		hostileCase{"non-canonical element", func(t *testing.T, id string, r *rawSession, opened []byte) {
			r.send(withElement(t, accepted(t, r, querier(t, id, x25519, 100)), 7, x25519NonCanonical))
		}, "query element 7"},
		hostileCase{"hello of another suite", func(t *testing.T, id string, r *rawSession, opened []byte) {
			r.send(next(t, querier(t, id, ristretto, 100)))
		}, "suite"},
		hostileCase{"fewer items than proposed", func(t *testing.T, id string, r *rawSession, opened []byte) {
			r.send(next(t, querier(t, id, x25519, 1)))
		}, "agreed to 100"},
	)
	approve := func(t *testing.T) string { return approved(t, rogue, bid, "overlap", "clients", nil) }
	playHostile(t, c, rogue, b, queries.PSIProtocol, approve, nil, cases)

	t.Run("still serving", func(t *testing.T) {
		q := submit(t, a, api.QueryRequest{Plugin: "overlap", Dataset: "clients", Peers: []string{"bank-b"}})
		if q.Status != api.StatusDone || q.Summary.IntersectionSize != 100 {
			t.Errorf("genuine overlap after the attacks = %s %q %d, want done with 100", q.Status, q.Error, q.Summary.IntersectionSize)
		}
	})
}

// TestHostileOPRFStream: a member with an approved risk check sends the
// node's labeled-PSI responder malformed, oversized, truncated, replayed
// and out-of-order messages, identity and non-canonical elements, a Hello of
// another suite and one declaring fewer identifiers than it proposed. Each
// is refused and the node still answers a genuine risk check afterwards.
func TestHostileOPRFStream(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 100)}})
	b := c.member("bureau", memDatasets{"risklist": riskList(50, 400)})
	rogue := c.member("rogue", memDatasets{"clients": {ids: idRange(0, 100)}})
	connect(t, a, b)
	connect(t, rogue, b)
	// querier is the protocol package's querier of n identifiers (the signed
	// proposals say 100), in batches of 50.
	querier := func(t *testing.T, n int) *oprf.Querier {
		t.Helper()
		q, err := oprf.NewQuerier(oprf.QuerierConfig{BatchSize: 50}, keys(0, n))
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	hello := func(t *testing.T, _ string) []byte { return next(t, querier(t, 100)) }
	// synced sends q's Hello and hands it the node's Sync and chunks until
	// it has its first query to send.
	synced := func(t *testing.T, r *rawSession, q *oprf.Querier) []byte {
		t.Helper()
		r.send(next(t, q))
		for {
			if err := q.Deliver(r.recv()); err != nil {
				t.Fatalf("the node's sync: %v", err)
			}
			if msg, err := q.Next(); err != nil {
				t.Fatal(err)
			} else if msg != nil {
				return msg
			}
		}
	}
	withElement := func(t *testing.T, query []byte, i int, elem []byte) []byte {
		t.Helper()
		env := new(oprfpb.Envelope)
		if err := proto.Unmarshal(query, env); err != nil {
			t.Fatal(err)
		}
		copy(env.GetQuery().Packed[i*oprf.ElementSize:], elem)
		return marshal(t, env)
	}
	cases := append(framingCases(hello),
		hostileCase{"query before the hello", func(t *testing.T, _ string, r *rawSession, _ []byte) {
			r.send(marshal(t, &oprfpb.Envelope{Body: &oprfpb.Envelope_Query{Query: &oprfpb.Query{Packed: make([]byte, 50*oprf.ElementSize)}}}))
		}, "unexpected"},
		hostileCase{"replayed query", func(t *testing.T, _ string, r *rawSession, _ []byte) {
			query := synced(t, r, querier(t, 100))
			r.send(query)
			env := new(oprfpb.Envelope)
			if err := proto.Unmarshal(r.recv(), env); err != nil || env.GetEvaluated() == nil {
				t.Fatalf("answer to the first query = %v, %v; want Evaluated", env, err)
			}
			r.send(query)
		}, "want query 1"},
		hostileCase{"identity element", func(t *testing.T, _ string, r *rawSession, _ []byte) {
			r.send(withElement(t, synced(t, r, querier(t, 100)), 7, zeroElement))
		}, "element 7 is the identity"},
		hostileCase{"non-canonical element", func(t *testing.T, _ string, r *rawSession, _ []byte) {
			r.send(withElement(t, synced(t, r, querier(t, 100)), 7, ffElement))
		}, "element 7 is not a canonical"},
		hostileCase{"hello of another suite", func(t *testing.T, _ string, r *rawSession, _ []byte) {
			env := new(oprfpb.Envelope)
			if err := proto.Unmarshal(next(t, querier(t, 100)), env); err != nil {
				t.Fatal(err)
			}
			env.GetHello().Suite = "P256-SHA256"
			r.send(marshal(t, env))
			// The only answer is a refusal with a fixed reason, no text.
			got := r.recv()
			ans := new(oprfpb.Envelope)
			if err := proto.Unmarshal(got, ans); err != nil || ans.GetRefuse().GetReason() != oprfpb.Reason_REASON_UNSUPPORTED {
				t.Errorf("answer to a hello of another suite = %v, %v; want Refuse(unsupported)", ans, err)
			}
		}, "not served"},
		hostileCase{"fewer identifiers than proposed", func(t *testing.T, _ string, r *rawSession, _ []byte) {
			r.send(next(t, querier(t, 1)))
		}, "agreed to 100"},
	)
	approve := func(t *testing.T) string { return approved(t, rogue, c.peers["bureau"], "risk-check", "risklist", nil) }
	playHostile(t, c, rogue, b, queries.OPRFProtocol, approve, nil, cases)

	t.Run("still serving", func(t *testing.T) {
		q := submit(t, a, api.QueryRequest{Plugin: "risk-check", Dataset: "clients", Peers: []string{"bureau"}, PeerDataset: "risklist"})
		if q.Status != api.StatusDone || len(q.Result.Rows) != 50 {
			t.Errorf("genuine risk check after the attacks = %s %q, want done with 50 hits", q.Status, q.Error)
		}
	})
}

// sumParams are segment-stats parameters as a querier proposes them.
var sumParams = map[string]string{"group": "region", "sum": "amount", "over": "overdue:90", "k": "1", "categories": "east,north,south"}

// vectorLen is the secure-sum vector length segment-stats plans for
// sumParams.
func vectorLen(t *testing.T, m *member) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inst, err := m.reg.Get("segment-stats")
	if err != nil {
		t.Fatal(err)
	}
	plug, err := m.reg.Launch(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	defer plug.Close()
	plan, err := plug.Plan(ctx, sumParams)
	if err != nil {
		t.Fatal(err)
	}
	return plan.VectorLen
}

// TestHostileSecAggStream: a member that proposed a secure sum and plays
// its aggregator sends the node, a participant, malformed, oversized,
// truncated, replayed and out-of-order messages, advertisements with
// identity and non-canonical keys, and advertisements signed for another
// session (secure aggregation names no suite: the session is what binds
// the keys). The node refuses each, revealing nothing, and still takes
// part in a genuine sum afterwards.
func TestHostileSecAggStream(t *testing.T) {
	c := newConsortium(t)
	av, bv, dv := accounts(0, 300), accounts(1000, 1400), accounts(5000, 5200)
	a := c.member("bank-a", memDatasets{"clients": av})
	b := c.member("bank-b", memDatasets{"clients": bv})
	d := c.member("bank-d", memDatasets{"clients": dv})
	rogue := c.member("rogue", memDatasets{"clients": accounts(0, 300)})
	connect(t, a, b)
	connect(t, a, d)
	connect(t, rogue, b)
	bid := c.peers["bank-b"]
	// ghost is a third party of the rogue's sums, played by the rogue.
	ghost, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	vlen := vectorLen(t, rogue)
	roster := []string{rogue.host.ID().String(), bid.String(), ghost.ID().String()}
	approve := func(t *testing.T) string {
		return approved(t, rogue, bid, "segment-stats", "clients", func(p *pb.Proposal) {
			p.Params, p.Peers, p.PeerIds = sumParams, []string{"bank-b", "ghost"}, roster[1:]
		})
	}
	// advertised reads bank-b's key advertisement, its first message.
	advertised := func(t *testing.T, r *rawSession) []byte {
		t.Helper()
		msg := r.recv()
		env := new(secaggpb.Envelope)
		if err := proto.Unmarshal(msg, env); err != nil || env.GetAdvertise() == nil {
			t.Fatalf("bank-b's first message = %v, %v; want its key advertisement", env, err)
		}
		return msg
	}
	// adverts runs an aggregator of cfg through round 0 with the rogue's
	// and the ghost's clients and bank-b's advertisement, and returns the
	// advertisement list it sends bank-b.
	adverts := func(t *testing.T, cfg secagg.Config, fromB []byte) []byte {
		t.Helper()
		srv, err := secagg.NewServer(secagg.ServerConfig{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		for self, sign := range map[string]func([]byte) []byte{roster[0]: rogue.cfg.Identity.Sign, roster[2]: ghost.Sign} {
			cl, err := secagg.NewClient(secagg.ClientConfig{Config: cfg, Self: secagg.ClientID(self),
				Signer: secagg.SignerFunc(func(m []byte) ([]byte, error) { return sign(m), nil })}, make([]uint64, vlen))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Deliver(secagg.ClientID(self), next(t, startable{cl})); err != nil {
				t.Fatal(err)
			}
		}
		out, err := srv.Deliver(secagg.ClientID(bid.String()), fromB)
		if err != nil {
			t.Fatalf("the aggregator refused bank-b's advertisement: %v", err)
		}
		for _, o := range out {
			if o.To == secagg.ClientID(bid.String()) {
				return o.Msg
			}
		}
		t.Fatalf("the aggregator sent bank-b nothing after round 0: %d messages", len(out))
		return nil
	}
	// withGhostKey returns list with the ghost's c_pk replaced.
	withGhostKey := func(t *testing.T, list []byte, key []byte) []byte {
		t.Helper()
		env := new(secaggpb.Envelope)
		if err := proto.Unmarshal(list, env); err != nil {
			t.Fatal(err)
		}
		sorted := slices.Sorted(slices.Values(roster))
		ghostIdx := uint32(slices.Index(sorted, roster[2]))
		for _, adv := range env.GetAdvertiseList().Adverts {
			if adv.Client == ghostIdx {
				adv.CPk = key
				return marshal(t, env)
			}
		}
		t.Fatal("no advertisement of the ghost in the list")
		return nil
	}
	consistency := func(t *testing.T, _ string) []byte {
		return marshal(t, &secaggpb.Envelope{Body: &secaggpb.Envelope_ConsistencyRequest{ConsistencyRequest: &secaggpb.ConsistencyRequest{Survivors: []uint32{0, 1, 2}}}})
	}
	cfgOf := func(id string) secagg.Config { return queries.SumConfig(id, roster, vlen) }
	cases := append(framingCases(consistency),
		hostileCase{"consistency request before the advertisements", func(t *testing.T, id string, r *rawSession, _ []byte) {
			r.send(consistency(t, id))
		}, "unexpected"},
		hostileCase{"replayed advertisement list", func(t *testing.T, id string, r *rawSession, opened []byte) {
			list := adverts(t, cfgOf(id), opened)
			r.send(list)
			env := new(secaggpb.Envelope)
			if err := proto.Unmarshal(r.recv(), env); err != nil || env.GetShares() == nil {
				t.Fatalf("bank-b's answer to the advertisements = %v, %v; want its shares", env, err)
			}
			r.send(list)
		}, "unexpected"},
		hostileCase{"identity key in an advertisement", func(t *testing.T, id string, r *rawSession, opened []byte) {
			r.send(withGhostKey(t, adverts(t, cfgOf(id), opened), zeroElement))
		}, "malformed advertisement"},
		hostileCase{"non-canonical key in an advertisement", func(t *testing.T, id string, r *rawSession, opened []byte) {
			r.send(withGhostKey(t, adverts(t, cfgOf(id), opened), x25519NonCanonical))
		}, "malformed advertisement"},
		hostileCase{"advertisements signed for another session", func(t *testing.T, id string, r *rawSession, opened []byte) {
			other := cfgOf(newQueryID(t))
			other.Verify = func(secagg.ClientID, []byte, []byte) bool { return true }
			r.send(adverts(t, other, opened))
		}, "bad signature"},
	)
	// bank-b speaks first: every case starts after its key advertisement.
	playHostile(t, c, rogue, b, queries.SecAggProtocol, approve, advertised, cases)

	t.Run("still serving", func(t *testing.T) {
		got := submit(t, a, api.QueryRequest{Plugin: "segment-stats", Params: sumParams, Dataset: "clients", Peers: []string{"bank-b", "bank-d"}})
		checkStats(t, got, wantStats(av, bv, dv))
	})
}

// startable adapts a secagg client's Start to next.
type startable struct{ c *secagg.Client }

func (s startable) Next() ([]byte, error) { return s.c.Start() }

// TestHostileSumParticipant: one participant of a four-party secure sum
// answers the aggregating node, last of all, with malformed bytes, an
// oversized length prefix, an advertisement with an identity key, its
// advertisement twice, or the wrong message. The node drops it at once —
// without waiting out the round's deadline — and reveals the sum of the
// other three. A participant that stays silent past a short session
// deadline fails the sum with an error naming it.
func TestHostileSumParticipant(t *testing.T) {
	c := newConsortium(t)
	av, bv, dv := accounts(0, 300), accounts(1000, 1400), accounts(5000, 5200)
	a := c.member("bank-a", memDatasets{"clients": av})
	b := c.member("bank-b", memDatasets{"clients": bv})
	d := c.member("bank-d", memDatasets{"clients": dv})
	rogue := c.member("rogue", memDatasets{"clients": accounts(7000, 7100)})
	connect(t, a, b)
	connect(t, a, d)
	connect(t, a, rogue)
	vlen := vectorLen(t, rogue)
	roster := []string{c.peers["bank-a"].String(), c.peers["bank-b"].String(), c.peers["bank-d"].String(), c.peers["rogue"].String()}

	send := func(w io.Writer, msg []byte) { _, _ = w.Write(frame(uint64(len(msg)), msg)) }
	// play is what the rogue does once it has agreed to run and made its
	// genuine advertisement.
	type player = func(w io.Writer, advert []byte)
	var play atomic.Pointer[player]
	c.mn.Host(rogue.host.ID()).SetStreamHandler(queries.SecAggProtocol, func(s network.Stream) {
		defer s.Reset()
		r := bufio.NewReader(s)
		var req pb.RunRequest
		if b, err := readFrameFrom(r); err != nil || proto.Unmarshal(b, &req) != nil {
			return
		}
		ok, _ := proto.Marshal(&pb.Answer{Status: "ok"})
		send(s, ok)
		cl, err := secagg.NewClient(secagg.ClientConfig{Config: queries.SumConfig(req.QueryId, roster, vlen), Self: secagg.ClientID(roster[3]),
			Signer: secagg.SignerFunc(func(m []byte) ([]byte, error) { return rogue.cfg.Identity.Sign(m), nil })}, make([]uint64, vlen))
		if err != nil {
			return
		}
		advert, err := cl.Start()
		if err != nil {
			return
		}
		time.Sleep(300 * time.Millisecond) // the others answer first
		(*play.Load())(s, advert)
		_, _ = io.Copy(io.Discard, r) // until the node lets go
	})
	withKey := func(advert []byte, key []byte) []byte {
		env := new(secaggpb.Envelope)
		if proto.Unmarshal(advert, env) != nil || env.GetAdvertise() == nil {
			return advert
		}
		env.GetAdvertise().CPk = key
		b, _ := proto.Marshal(env)
		return b
	}
	cases := []struct {
		name string
		play func(w io.Writer, advert []byte)
	}{
		{"malformed bytes", func(w io.Writer, _ []byte) { send(w, []byte{0xff, 0xff, 0x01}) }},
		{"oversized length prefix", func(w io.Writer, _ []byte) { _, _ = w.Write(binary.AppendUvarint(nil, protocol.MaxMessageSize+1)) }},
		{"identity key in its advertisement", func(w io.Writer, advert []byte) { send(w, withKey(advert, zeroElement)) }},
		{"advertisement twice", func(w io.Writer, advert []byte) { send(w, advert); send(w, advert) }},
		{"consistency signature instead of an advertisement", func(w io.Writer, _ []byte) {
			b, _ := proto.Marshal(&secaggpb.Envelope{Body: &secaggpb.Envelope_ConsistencySig{ConsistencySig: &secaggpb.ConsistencySig{Sig: make([]byte, 64)}}})
			send(w, b)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			play.Store(&tc.play)
			start := time.Now()
			got := submit(t, a, api.QueryRequest{Plugin: "segment-stats", Params: sumParams, Dataset: "clients", Peers: []string{"bank-b", "bank-d", "rogue"}})
			took := time.Since(start)
			checkStats(t, got, wantStats(av, bv, dv))
			// A round the node waited out would take its 30 s deadline.
			if took > 20*time.Second {
				t.Errorf("the sum took %v: the node waited for the round's deadline instead of dropping the rogue at once", took)
			}
		})
	}
	t.Run("silent past the session deadline", func(t *testing.T) {
		silent := player(func(io.Writer, []byte) {})
		play.Store(&silent)
		a := a.restart(t, func(cfg *queries.Config) { cfg.Timeout = sessionTimeout })
		got := submit(t, a, api.QueryRequest{Plugin: "segment-stats", Params: sumParams, Dataset: "clients", Peers: []string{"bank-b", "bank-d", "rogue"}})
		if got.Status != api.StatusFailed {
			t.Fatalf("sum with a silent participant past a %v deadline = %s, want failed", sessionTimeout, got.Status)
		}
		for _, want := range []string{"deadline", "rogue", sessionTimeout.String(), "psi.timeout_seconds"} {
			if !strings.Contains(got.Error, want) {
				t.Errorf("error %q does not say %q", got.Error, want)
			}
		}
	})
}
