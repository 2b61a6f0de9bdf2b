package p2p_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"xnode/node/identity"
	"xnode/node/membership"
	"xnode/node/membership/membershiptest"
	"xnode/node/p2p"
	"xnode/protocol"
	"xnode/protocol/secagg"
)

const benchSecAgg = "/xnode/bench-secagg/1.0.0"

func verifyPeer(id secagg.ClientID, msg, sig []byte) bool {
	p, err := peer.Decode(string(id))
	return err == nil && identity.Verify(p, msg, sig)
}

// BenchmarkSecureSumOverMocknet runs secure aggregation of 10 participants'
// 100,000-element vectors through libp2p streams between member nodes (the
// aggregator is an eleventh node), and reports bytes sent per participant
// as a multiple of its plaintext vector.
func BenchmarkSecureSumOverMocknet(b *testing.B) {
	const clients, length = 10, 100_000
	mn := mocknet.New()
	defer mn.Close()
	root := membershiptest.NewRoot(b, "bench")
	var nodes []*p2p.Node
	var ids []*identity.Identity
	for i := 0; i <= clients; i++ {
		id, err := identity.Generate(nil)
		if err != nil {
			b.Fatal(err)
		}
		h, err := mn.AddPeer(id.PrivKey(), ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 30000+i)))
		if err != nil {
			b.Fatal(err)
		}
		n, err := p2p.NewWithHost(context.Background(), h, p2p.Config{
			Identity: id, Consortium: root.Consortium, Cert: membershiptest.IssueNow(b, root, id.ID(), membership.DefaultRoles()...),
			StreamTimeout: 5 * time.Minute,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer n.Close()
		nodes, ids = append(nodes, n), append(ids, id)
	}
	if err := mn.LinkAll(); err != nil {
		b.Fatal(err)
	}
	server := nodes[0]
	for _, n := range nodes[1:] {
		if _, err := server.Connect(context.Background(), n.AddrInfo()); err != nil {
			b.Fatal(err)
		}
	}
	roster := make([]secagg.ClientID, clients)
	inputs := make([][]uint64, clients)
	want := make([]uint64, length)
	for i := range roster {
		roster[i] = secagg.ClientID(ids[i+1].ID().String())
		inputs[i] = make([]uint64, length)
		for j := range inputs[i] {
			inputs[i][j] = uint64(i*j + 7)
			want[j] += inputs[i][j]
		}
	}
	var sent atomic.Int64
	session := []byte("bench")
	cfg := secagg.Config{Session: session, Clients: roster, Threshold: clients/2 + 1, VectorLen: length, Verify: verifyPeer}
	for i, n := range nodes[1:] {
		self, input, id := roster[i], inputs[i], ids[i+1]
		n.Handle(benchSecAgg, "", func(ctx context.Context, _ *membership.Cert, c protocol.Conn) error {
			cl, err := secagg.NewClient(secagg.ClientConfig{Config: cfg, Self: self,
				Signer: secagg.SignerFunc(func(m []byte) ([]byte, error) { return id.Sign(m), nil })}, input)
			if err != nil {
				return err
			}
			first, err := cl.Start()
			if err != nil {
				return err
			}
			sent.Add(int64(len(first)))
			if err := c.Send(ctx, first); err != nil {
				return err
			}
			for !cl.Done() {
				msg, err := c.Recv(ctx)
				if err != nil {
					return err
				}
				replies, err := cl.Deliver(msg)
				if err != nil {
					return err
				}
				for _, r := range replies {
					sent.Add(int64(len(r)))
					if err := c.Send(ctx, r); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		sent.Store(0)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		srv, err := secagg.NewServer(secagg.ServerConfig{Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		type ev struct {
			from secagg.ClientID
			msg  []byte
			err  error
		}
		events := make(chan ev, 64)
		conns := map[secagg.ClientID]p2p.StreamConn{}
		for i, n := range nodes[1:] {
			c, err := server.Open(ctx, n.ID(), benchSecAgg, "")
			if err != nil {
				b.Fatal(err)
			}
			conns[roster[i]] = c
			go func(id secagg.ClientID) {
				for {
					msg, err := c.Recv(ctx)
					events <- ev{id, msg, err}
					if err != nil {
						return
					}
				}
			}(roster[i])
		}
		for !srv.Done() {
			e := <-events
			if e.err != nil {
				// A client closes its stream after its last message.
				if slices.Contains(srv.Waiting(), e.from) {
					b.Fatalf("client %s: %v", e.from, e.err)
				}
				continue
			}
			out, err := srv.Deliver(e.from, e.msg)
			if err != nil {
				b.Fatal(err)
			}
			for _, o := range out {
				if err := conns[o.To].Send(ctx, o.Msg); err != nil {
					b.Fatal(err)
				}
			}
		}
		sum, survivors, err := srv.Result()
		if err != nil || len(survivors) != clients {
			b.Fatalf("Result: %v (%d survivors)", err, len(survivors))
		}
		for j := range want {
			if sum[j] != want[j] {
				b.Fatalf("sum[%d] = %d, want %d", j, sum[j], want[j])
			}
		}
		for _, c := range conns {
			_ = c.Close()
		}
		cancel()
	}
	b.StopTimer()
	perClient := float64(sent.Load()) / clients
	b.ReportMetric(perClient, "B-sent/participant")
	b.ReportMetric(perClient/float64(8*length), "sent/plaintext")
}
