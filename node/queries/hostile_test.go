package queries_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"xnode/node/api"
	"xnode/node/membership"
	"xnode/node/queries"
	"xnode/node/queries/pb"
)

// rogueSession opens a stream from m to peer p, sends msgs and returns the
// answer, or an error if the stream was reset.
func rogueSession(t *testing.T, m *member, p peer.ID, id libp2pproto.ID, role string, msgs ...[]byte) (*pb.Answer, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := m.host.Open(ctx, p, id, role)
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	defer c.Reset()
	for _, msg := range msgs {
		if err := c.Send(ctx, msg); err != nil {
			return nil, err
		}
	}
	b, err := c.Recv(ctx)
	if err != nil {
		return nil, err
	}
	var ans pb.Answer
	if err := proto.Unmarshal(b, &ans); err != nil {
		return nil, err
	}
	return &ans, nil
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signedProposal builds a proposal from m, signed with m's key unless
// forge is set.
func signedProposal(t *testing.T, m *member, queryID string, mutate func(*pb.Proposal), forge bool) []byte {
	t.Helper()
	p := &pb.Proposal{
		QueryId: queryID, QuerierId: m.host.ID().String(), QuerierName: m.name,
		PluginName: "overlap", Protocol: "psi.cardinality", Suite: "x25519-elligator2", Dataset: "clients",
		QuerierSetSize: 100, Peers: []string{"bank-b"}, CreatedUnix: time.Now().Unix(), ExpiresUnix: time.Now().Add(time.Hour).Unix(),
	}
	inst, err := m.reg.Get("overlap")
	if err != nil {
		t.Fatal(err)
	}
	p.PluginDigest, p.PluginVersion = inst.Digest, inst.Version
	if mutate != nil {
		mutate(p)
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	sig := m.cfg.Identity.Sign(append([]byte("xnode-proposal-v1"), body...))
	if forge {
		sig[0] ^= 1
	}
	return marshal(t, &pb.Control{Body: &pb.Control_Propose{Propose: &pb.SignedProposal{Proposal: body, Signature: sig}}})
}

func newQueryID(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestHostileMember sends a node malformed, forged, replayed and
// out-of-order messages from a consortium member: each is refused, and
// the node keeps answering genuine queries.
func TestHostileMember(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 200)}})
	b := c.member("bank-b", memDatasets{"clients": {ids: idRange(100, 300)}})
	rogue := c.member("rogue", memDatasets{"clients": {ids: idRange(0, 200)}})
	connect(t, a, b)
	connect(t, rogue, b)
	bid := c.peers["bank-b"]

	t.Run("garbage control message", func(t *testing.T) {
		if ans, err := rogueSession(t, rogue, bid, queries.ControlProtocol, "", []byte{0xff, 0xff, 0x01}); err == nil {
			t.Errorf("garbage got an answer: %+v", ans)
		}
	})
	t.Run("forged signature", func(t *testing.T) {
		ans, err := rogueSession(t, rogue, bid, queries.ControlProtocol, "", signedProposal(t, rogue, newQueryID(t), nil, true))
		if err != nil || ans.Status != api.StatusDenied || ans.Rule != queries.RuleProposal {
			t.Errorf("forged proposal = %+v, %v; want denied by %s", ans, err, queries.RuleProposal)
		}
	})
	t.Run("proposal in another querier's name", func(t *testing.T) {
		msg := signedProposal(t, rogue, newQueryID(t), func(p *pb.Proposal) { p.QuerierId = c.peers["bank-a"].String() }, false)
		ans, err := rogueSession(t, rogue, bid, queries.ControlProtocol, "", msg)
		if err != nil || ans.Status != api.StatusDenied {
			t.Errorf("impersonating proposal = %+v, %v; want denied", ans, err)
		}
	})
	t.Run("replayed proposal", func(t *testing.T) {
		id := newQueryID(t)
		msg := signedProposal(t, rogue, id, nil, false)
		first, err := rogueSession(t, rogue, bid, queries.ControlProtocol, "", msg)
		if err != nil || first.Status != api.StatusApproved {
			t.Fatalf("first proposal = %+v, %v; want approved", first, err)
		}
		again, err := rogueSession(t, rogue, bid, queries.ControlProtocol, "", msg)
		if err != nil || again.Status != api.StatusDenied || !strings.Contains(again.Reason, "already") {
			t.Errorf("replayed proposal = %+v, %v; want denied as already used", again, err)
		}
	})
	t.Run("expired and unknown suite", func(t *testing.T) {
		for name, mutate := range map[string]func(*pb.Proposal){
			"expired":       func(p *pb.Proposal) { p.ExpiresUnix = time.Now().Add(-time.Minute).Unix() },
			"unknown suite": func(p *pb.Proposal) { p.Suite = "rot13" },
			"other digest":  func(p *pb.Proposal) { p.PluginDigest = "sha256:" + strings.Repeat("00", 32) },
		} {
			ans, err := rogueSession(t, rogue, bid, queries.ControlProtocol, "", signedProposal(t, rogue, newQueryID(t), mutate, false))
			if err != nil || ans.Status != api.StatusDenied {
				t.Errorf("%s proposal = %+v, %v; want denied", name, ans, err)
			}
		}
	})
	t.Run("run request for an unknown query", func(t *testing.T) {
		ans, err := rogueSession(t, rogue, bid, queries.PSIProtocol, membership.RolePSI, marshal(t, &pb.RunRequest{QueryId: newQueryID(t)}))
		if err != nil || ans.Status == "ok" {
			t.Errorf("run of an unknown query = %+v, %v; want refused", ans, err)
		}
	})
	t.Run("run request for another querier's query", func(t *testing.T) {
		q := submit(t, a, api.QueryRequest{Plugin: "overlap", Dataset: "clients", Peers: []string{"bank-b"}})
		if q.Status != api.StatusDone {
			t.Fatalf("genuine query = %s %q", q.Status, q.Error)
		}
		ans, err := rogueSession(t, rogue, bid, queries.PSIProtocol, membership.RolePSI, marshal(t, &pb.RunRequest{QueryId: q.ID}))
		if err != nil || ans.Status == "ok" {
			t.Errorf("rogue run of bank-a's query = %+v, %v; want refused", ans, err)
		}
	})
	t.Run("approved query, then garbage instead of the protocol", func(t *testing.T) {
		id := newQueryID(t)
		if ans, err := rogueSession(t, rogue, bid, queries.ControlProtocol, "", signedProposal(t, rogue, id, nil, false)); err != nil || ans.Status != api.StatusApproved {
			t.Fatalf("proposal = %+v, %v", ans, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := rogue.host.Open(ctx, bid, queries.PSIProtocol, membership.RolePSI)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Reset()
		if err := conn.Send(ctx, marshal(t, &pb.RunRequest{QueryId: id})); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Recv(ctx); err != nil {
			t.Fatalf("no answer to an approved run: %v", err)
		}
		if err := conn.Send(ctx, []byte("not an ECDH-PSI message")); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Recv(ctx); err == nil {
			t.Error("the node answered a garbage protocol message")
		}
		rec := wait(t, b, id, api.Finished)
		if rec.Status != api.StatusFailed {
			t.Errorf("bank-b's record of the broken session = %s, want failed", rec.Status)
		}
		// The approval was used up: the same run cannot start again.
		ans, err := rogueSession(t, rogue, bid, queries.PSIProtocol, membership.RolePSI, marshal(t, &pb.RunRequest{QueryId: id}))
		if err != nil || ans.Status == "ok" {
			t.Errorf("replayed run = %+v, %v; want refused", ans, err)
		}
	})
	t.Run("still serving", func(t *testing.T) {
		q := submit(t, a, api.QueryRequest{Plugin: "overlap", Dataset: "clients", Peers: []string{"bank-b"}})
		if q.Status != api.StatusDone || q.Summary.IntersectionSize != 100 {
			t.Errorf("genuine query after the attacks = %s %q %d, want done with 100", q.Status, q.Error, q.Summary.IntersectionSize)
		}
	})
}
