package secagg_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"xnode/protocol"
	"xnode/protocol/secagg"
	"xnode/protocol/secagg/pb"
	"xnode/protocol/secagg/secaggtest"
)

// stepped is a session driven by hand, message batch by message batch.
type stepped struct {
	ids      *secaggtest.Identities
	srv      *secagg.Server
	clients  []*secagg.Client
	toServer []secagg.Outgoing // To is the sender here
	toClient []secagg.Outgoing
}

func newStepped(t testing.TB, n, length int) *stepped {
	t.Helper()
	return newSteppedThreshold(t, n, n/2+1, length)
}

// newSteppedThreshold is newStepped with threshold thr.
func newSteppedThreshold(t testing.TB, n, thr, length int) *stepped {
	t.Helper()
	ids := secaggtest.NewIdentities(n)
	cfg := config(ids, thr, length)
	srv, err := secagg.NewServer(secagg.ServerConfig{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	s := &stepped{ids: ids, srv: srv}
	for i, c := range ids.Clients {
		cl, err := secagg.NewClient(secagg.ClientConfig{Config: cfg, Self: c, Signer: ids.Signer(c)}, make([]uint64, length))
		if err != nil {
			t.Fatal(err)
		}
		s.clients = append(s.clients, cl)
		msg, err := cl.Start()
		if err != nil {
			t.Fatal(err)
		}
		s.toServer = append(s.toServer, secagg.Outgoing{To: ids.Clients[i], Msg: msg})
	}
	return s
}

// until runs the session until the server collects round r, with the
// server's messages opening r not yet delivered (in s.toClient).
func (s *stepped) until(t testing.TB, r secagg.Round) {
	t.Helper()
	for s.srv.Round() < r {
		for _, m := range s.toServer {
			out, err := s.srv.Deliver(m.To, m.Msg)
			if err != nil {
				t.Fatalf("server Deliver: %v", err)
			}
			s.toClient = append(s.toClient, out...)
		}
		s.toServer = nil
		if s.srv.Round() >= r {
			return
		}
		for _, m := range s.toClient {
			i := s.index(m.To)
			replies, err := s.clients[i].Deliver(m.Msg)
			if err != nil {
				t.Fatalf("client Deliver: %v", err)
			}
			for _, r := range replies {
				s.toServer = append(s.toServer, secagg.Outgoing{To: m.To, Msg: r})
			}
		}
		s.toClient = nil
	}
}

func (s *stepped) index(c secagg.ClientID) int {
	for i, id := range s.ids.Clients {
		if id == c {
			return i
		}
	}
	panic("unknown client " + string(c))
}

func env(t testing.TB, e *pb.Envelope) []byte {
	t.Helper()
	b, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServerRefusesHostileMessages(t *testing.T) {
	key := make([]byte, 32)
	key[0] = 9 // the X25519 base point: a valid key
	cases := []struct {
		round secagg.Round
		name  string
		msg   func(t testing.TB, s *stepped) []byte
	}{
		{secagg.RoundAdvertise, "garbage", func(t testing.TB, s *stepped) []byte { return []byte{0xff, 1, 2} }},
		{secagg.RoundAdvertise, "empty envelope", func(t testing.TB, s *stepped) []byte { return env(t, &pb.Envelope{}) }},
		{secagg.RoundAdvertise, "oversized", func(t testing.TB, s *stepped) []byte { return make([]byte, protocol.MaxMessageSize+1) }},
		{secagg.RoundAdvertise, "advert for another client", func(t testing.TB, s *stepped) []byte {
			return env(t, &pb.Envelope{Body: &pb.Envelope_Advertise{Advertise: &pb.Advertise{Client: 1, CPk: key, SPk: key}}})
		}},
		{secagg.RoundAdvertise, "low-order key", func(t testing.TB, s *stepped) []byte {
			return env(t, &pb.Envelope{Body: &pb.Envelope_Advertise{Advertise: &pb.Advertise{CPk: make([]byte, 32), SPk: key}}})
		}},
		{secagg.RoundAdvertise, "unsigned", func(t testing.TB, s *stepped) []byte {
			k2 := append([]byte(nil), key...)
			k2[1] = 1
			return env(t, &pb.Envelope{Body: &pb.Envelope_Advertise{Advertise: &pb.Advertise{CPk: key, SPk: k2}}})
		}},
		{secagg.RoundAdvertise, "wrong round", func(t testing.TB, s *stepped) []byte {
			return env(t, &pb.Envelope{Body: &pb.Envelope_MaskedInput{MaskedInput: &pb.MaskedInput{Packed: make([]byte, 64)}}})
		}},
		{secagg.RoundShareKeys, "too few ciphertexts", func(t testing.TB, s *stepped) []byte {
			return env(t, &pb.Envelope{Body: &pb.Envelope_Shares{Shares: &pb.Shares{}}})
		}},
		{secagg.RoundShareKeys, "ciphertexts to one client twice", func(t testing.TB, s *stepped) []byte {
			ct := &pb.Ciphertext{From: 0, To: 1, Sealed: make([]byte, 80)}
			return env(t, &pb.Envelope{Body: &pb.Envelope_Shares{Shares: &pb.Shares{Ciphertexts: []*pb.Ciphertext{ct, ct}}}})
		}},
		{secagg.RoundShareKeys, "ciphertext of the wrong size", func(t testing.TB, s *stepped) []byte {
			return env(t, &pb.Envelope{Body: &pb.Envelope_Shares{Shares: &pb.Shares{Ciphertexts: []*pb.Ciphertext{
				{From: 0, To: 1, Sealed: make([]byte, 81)}, {From: 0, To: 2, Sealed: make([]byte, 80)}}}}})
		}},
		{secagg.RoundMaskedInput, "ragged chunk", func(t testing.TB, s *stepped) []byte {
			return env(t, &pb.Envelope{Body: &pb.Envelope_MaskedInput{MaskedInput: &pb.MaskedInput{Packed: make([]byte, 13)}}})
		}},
		{secagg.RoundMaskedInput, "chunk past the end", func(t testing.TB, s *stepped) []byte {
			return env(t, &pb.Envelope{Body: &pb.Envelope_MaskedInput{MaskedInput: &pb.MaskedInput{Packed: make([]byte, 8*17)}}})
		}},
		{secagg.RoundMaskedInput, "chunk at the wrong offset", func(t testing.TB, s *stepped) []byte {
			return env(t, &pb.Envelope{Body: &pb.Envelope_MaskedInput{MaskedInput: &pb.MaskedInput{Offset: 3, Packed: make([]byte, 8)}}})
		}},
		{secagg.RoundConsistency, "bad consistency signature", func(t testing.TB, s *stepped) []byte {
			return env(t, &pb.Envelope{Body: &pb.Envelope_ConsistencySig{ConsistencySig: &pb.ConsistencySig{Sig: make([]byte, 64)}}})
		}},
		{secagg.RoundUnmask, "no shares", func(t testing.TB, s *stepped) []byte {
			return env(t, &pb.Envelope{Body: &pb.Envelope_Unmask{Unmask: &pb.Unmask{}}})
		}},
		{secagg.RoundUnmask, "non-canonical share", func(t testing.TB, s *stepped) []byte {
			bad := make([]byte, 32)
			for i := range bad {
				bad[i] = 0xff
			}
			var rs []*pb.Reveal
			for i := range 3 {
				rs = append(rs, &pb.Reveal{Owner: uint32(i), Share: bad})
			}
			return env(t, &pb.Envelope{Body: &pb.Envelope_Unmask{Unmask: &pb.Unmask{SelfMaskShares: rs}}})
		}},
		{secagg.RoundUnmask, "mask-key share of a survivor", func(t testing.TB, s *stepped) []byte {
			var rs []*pb.Reveal
			for i := range 3 {
				rs = append(rs, &pb.Reveal{Owner: uint32(i), Share: make([]byte, 32)})
			}
			return env(t, &pb.Envelope{Body: &pb.Envelope_Unmask{Unmask: &pb.Unmask{SelfMaskShares: rs, MaskKeyShares: rs[:1]}}})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.round.String()+"/"+tc.name, func(t *testing.T) {
			s := newStepped(t, 3, 16)
			s.until(t, tc.round)
			if tc.round > secagg.RoundAdvertise {
				// Let the clients answer the round's opening; keep their replies.
				s.until(t, tc.round) // no-op; the opening is in s.toClient
				var replies []secagg.Outgoing
				for _, m := range s.toClient {
					out, err := s.clients[s.index(m.To)].Deliver(m.Msg)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range out {
						replies = append(replies, secagg.Outgoing{To: m.To, Msg: r})
					}
				}
				s.toClient, s.toServer = nil, replies
			}
			s.toServer = s.toServer[1:] // client-00's honest message is replaced
			_, err := s.srv.Deliver("client-00", tc.msg(t, s))
			if !errors.Is(err, secagg.ErrProtocol) && !errors.Is(err, secagg.ErrBadSignature) {
				t.Fatalf("Deliver = %v, want ErrProtocol or ErrBadSignature", err)
			}
			// client-00 is dropped; the others finish the session.
			if _, err := s.srv.Deliver("client-00", tc.msg(t, s)); err == nil {
				t.Error("server took a message from a dropped client")
			}
			s.until(t, secagg.RoundDone)
			sum, survivors, err := s.srv.Result()
			if err != nil {
				t.Fatalf("Result: %v", err)
			}
			wantSurvivors := 2
			if tc.round >= secagg.RoundConsistency {
				wantSurvivors = 3 // its masked input is in
			}
			if len(survivors) != wantSurvivors || len(sum) != 16 {
				t.Errorf("Result: %d survivors, %d elements; want %d, 16", len(survivors), len(sum), wantSurvivors)
			}
			for _, x := range sum {
				if x != 0 {
					t.Fatalf("sum of zero inputs = %v", sum)
				}
			}
		})
	}
}

func TestServerRefusesStrangersAndLateMessages(t *testing.T) {
	s := newStepped(t, 3, 4)
	if _, err := s.srv.Deliver("stranger", s.toServer[0].Msg); !errors.Is(err, secagg.ErrProtocol) {
		t.Errorf("Deliver from a stranger = %v, want ErrProtocol", err)
	}
	if _, err := s.srv.Deliver("client-00", s.toServer[0].Msg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.srv.Deliver("client-00", s.toServer[0].Msg); !errors.Is(err, secagg.ErrProtocol) {
		t.Errorf("second advertisement = %v, want ErrProtocol", err)
	}
	if _, _, err := s.srv.Result(); !errors.Is(err, secagg.ErrNotDone) {
		t.Errorf("Result before the end = %v, want ErrNotDone", err)
	}
}

func TestClientRefusesHostileMessages(t *testing.T) {
	cases := []struct {
		round secagg.Round // the client waits for the server message opening it
		name  string
		msg   []byte
	}{
		{secagg.RoundShareKeys, "garbage", []byte{0xff, 0xff}},
		{secagg.RoundShareKeys, "empty", nil},
		{secagg.RoundShareKeys, "advert list without this client", mustEnv(&pb.Envelope{Body: &pb.Envelope_AdvertiseList{AdvertiseList: &pb.AdvertiseList{}}})},
		{secagg.RoundShareKeys, "adverts out of order", mustEnv(&pb.Envelope{Body: &pb.Envelope_AdvertiseList{AdvertiseList: &pb.AdvertiseList{Adverts: []*pb.Advertise{{Client: 2}, {Client: 1}}}}})},
		{secagg.RoundShareKeys, "wrong message", mustEnv(&pb.Envelope{Body: &pb.Envelope_Shares{Shares: &pb.Shares{}}})},
		{secagg.RoundMaskedInput, "ciphertext that does not open", mustEnv(&pb.Envelope{Body: &pb.Envelope_Shares{Shares: &pb.Shares{Ciphertexts: []*pb.Ciphertext{
			{From: 1, To: 0, Sealed: make([]byte, 80)}, {From: 2, To: 0, Sealed: make([]byte, 80)}}}}})},
		{secagg.RoundMaskedInput, "ciphertext from itself", mustEnv(&pb.Envelope{Body: &pb.Envelope_Shares{Shares: &pb.Shares{Ciphertexts: []*pb.Ciphertext{
			{From: 0, To: 0, Sealed: make([]byte, 80)}}}}})},
		{secagg.RoundMaskedInput, "too few shares", mustEnv(&pb.Envelope{Body: &pb.Envelope_Shares{Shares: &pb.Shares{}}})},
		{secagg.RoundConsistency, "survivors without this client", mustEnv(&pb.Envelope{Body: &pb.Envelope_ConsistencyRequest{ConsistencyRequest: &pb.ConsistencyRequest{Survivors: []uint32{1, 2}}}})},
		{secagg.RoundConsistency, "survivors unsorted", mustEnv(&pb.Envelope{Body: &pb.Envelope_ConsistencyRequest{ConsistencyRequest: &pb.ConsistencyRequest{Survivors: []uint32{0, 2, 1}}}})},
		{secagg.RoundConsistency, "survivor outside the roster", mustEnv(&pb.Envelope{Body: &pb.Envelope_ConsistencyRequest{ConsistencyRequest: &pb.ConsistencyRequest{Survivors: []uint32{0, 1, 7}}}})},
		{secagg.RoundConsistency, "too few survivors", mustEnv(&pb.Envelope{Body: &pb.Envelope_ConsistencyRequest{ConsistencyRequest: &pb.ConsistencyRequest{Survivors: []uint32{0}}}})},
		{secagg.RoundUnmask, "no signatures", mustEnv(&pb.Envelope{Body: &pb.Envelope_UnmaskRequest{UnmaskRequest: &pb.UnmaskRequest{Survivors: []uint32{0, 1, 2}}}})},
		{secagg.RoundUnmask, "both lists", mustEnv(&pb.Envelope{Body: &pb.Envelope_UnmaskRequest{UnmaskRequest: &pb.UnmaskRequest{Survivors: []uint32{0, 1, 2}, Dropped: []uint32{1}}}})},
	}
	for _, tc := range cases {
		t.Run(tc.round.String()+"/"+tc.name, func(t *testing.T) {
			s := newStepped(t, 3, 8)
			s.until(t, tc.round)
			c := s.clients[0]
			out, err := c.Deliver(tc.msg)
			if err == nil {
				t.Fatalf("client accepted the message and sent %d replies", len(out))
			}
			if !c.Done() || c.Err() == nil {
				t.Error("client went on after a refused message")
			}
			if _, err := c.Deliver(tc.msg); err == nil {
				t.Error("failed client took another message")
			}
		})
	}
}

func mustEnv(e *pb.Envelope) []byte {
	b, err := proto.Marshal(e)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzServerDeliver feeds arbitrary frames to a server in each round: no
// input may panic it, and the rest of the session must still complete.
func FuzzServerDeliver(f *testing.F) {
	f.Add([]byte{})
	for r := secagg.RoundAdvertise; r <= secagg.RoundUnmask; r++ {
		s := newStepped(f, 3, 4)
		s.until(f, r)
		for _, m := range s.toClient {
			out, _ := s.clients[s.index(m.To)].Deliver(m.Msg)
			for _, o := range out {
				f.Add(o)
			}
		}
		for _, m := range s.toServer {
			f.Add(m.Msg)
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for r := secagg.RoundAdvertise; r <= secagg.RoundUnmask; r++ {
			s := newStepped(t, 3, 4)
			s.until(t, r)
			_, _ = s.srv.Deliver("client-01", msg)
			_, _ = s.srv.EndRound()
		}
	})
}

// FuzzClientDeliver feeds arbitrary frames to a client waiting for each of
// the server's messages.
func FuzzClientDeliver(f *testing.F) {
	f.Add([]byte{})
	for r := secagg.RoundShareKeys; r <= secagg.RoundUnmask; r++ {
		s := newStepped(f, 3, 4)
		s.until(f, r)
		for _, m := range s.toClient {
			f.Add(m.Msg)
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for r := secagg.RoundShareKeys; r <= secagg.RoundUnmask; r++ {
			s := newStepped(t, 3, 4)
			s.until(t, r)
			_, _ = s.clients[1].Deliver(msg)
		}
	})
}

// TestDropEndsRoundAfterBadLastMessage: when the client the server still
// waits for sends a bad message, Drop ends the round at once, as Deliver's
// doc promises, instead of leaving it open until the caller's deadline.
func TestDropEndsRoundAfterBadLastMessage(t *testing.T) {
	for _, round := range []secagg.Round{secagg.RoundAdvertise, secagg.RoundShareKeys} {
		t.Run(round.String(), func(t *testing.T) {
			s := newStepped(t, 4, 8)
			s.until(t, round)
			if round > secagg.RoundAdvertise {
				for _, m := range s.toClient {
					out, err := s.clients[s.index(m.To)].Deliver(m.Msg)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range out {
						s.toServer = append(s.toServer, secagg.Outgoing{To: m.To, Msg: r})
					}
				}
				s.toClient = nil
			}
			// Everyone but client-00 answers honestly; then client-00 sends garbage.
			for _, m := range s.toServer {
				if m.To == "client-00" {
					continue
				}
				if out, err := s.srv.Deliver(m.To, m.Msg); err != nil || out != nil {
					t.Fatalf("Deliver(%s) = %d messages, %v; want the round still open", m.To, len(out), err)
				}
			}
			if _, err := s.srv.Deliver("client-00", []byte{0xff, 0x01}); !errors.Is(err, secagg.ErrProtocol) {
				t.Fatalf("Deliver(garbage) = %v, want ErrProtocol", err)
			}
			out, err := s.srv.Drop("client-00")
			if err != nil {
				t.Fatalf("Drop after the bad message: %v", err)
			}
			if got, want := s.srv.Round(), round+1; got != want || len(out) != 3 {
				t.Errorf("after Drop: round %v with %d messages out, want round %v with one for each of the 3 others", got, len(out), want)
			}
			if out, err := s.srv.Drop("client-00"); err != nil || out != nil {
				t.Errorf("second Drop = %d messages, %v; want nothing", len(out), err)
			}
		})
	}
}

// TestClientEnforcesThresholdAboveMajority: with t = n = 3 (a threshold
// above the strict majority, as xnode sets for three parties), a client
// that a server tells one party is gone refuses to go on, at every round,
// and sends nothing: no shares, no masked input, no signature, no
// unmasking share. Each party enforces t itself, whatever the server does.
func TestClientEnforcesThresholdAboveMajority(t *testing.T) {
	cases := []struct {
		round secagg.Round // the client waits for the server message opening it
		name  string
		edit  func(*pb.Envelope)
		want  error
	}{
		{secagg.RoundShareKeys, "advertisements of two", func(e *pb.Envelope) {
			l := e.GetAdvertiseList()
			l.Adverts = l.Adverts[:2]
		}, secagg.ErrTooFewSurvivors},
		{secagg.RoundMaskedInput, "shares from one other", func(e *pb.Envelope) {
			m := e.GetShares()
			m.Ciphertexts = m.Ciphertexts[:1]
		}, secagg.ErrTooFewSurvivors},
		{secagg.RoundConsistency, "two survivors", func(e *pb.Envelope) {
			e.GetConsistencyRequest().Survivors = []uint32{0, 1}
		}, secagg.ErrTooFewSurvivors},
		{secagg.RoundUnmask, "two consistency signatures", func(e *pb.Envelope) {
			r := e.GetUnmaskRequest()
			r.Sigs = r.Sigs[:2]
		}, secagg.ErrInconsistent},
	}
	for _, tc := range cases {
		t.Run(tc.round.String()+"/"+tc.name, func(t *testing.T) {
			s := newSteppedThreshold(t, 3, 3, 8)
			s.until(t, tc.round)
			var msg []byte
			for _, m := range s.toClient {
				if m.To == s.ids.Clients[0] {
					msg = m.Msg
				}
			}
			e := new(pb.Envelope)
			if msg == nil || proto.Unmarshal(msg, e) != nil {
				t.Fatalf("no server message opening %v for client 0", tc.round)
			}
			tc.edit(e)
			c := s.clients[0]
			out, err := c.Deliver(env(t, e))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Deliver = %d replies, %v; want %v", len(out), err, tc.want)
			}
			if len(out) != 0 {
				t.Errorf("client sent %d messages with fewer than t = 3 parties left", len(out))
			}
			if !c.Done() || c.Err() == nil {
				t.Error("client went on after refusing")
			}
		})
	}
}
