package p2p_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"xnode/node/identity"
	"xnode/node/membership"
	"xnode/node/membership/membershiptest"
	"xnode/node/p2p"
)

// Two real hosts over loopback TCP and QUIC, with Noise and the gater.
func TestLoopbackTCPAndQUIC(t *testing.T) {
	root := membershiptest.NewRoot(t, "pilot")
	newNode := func() *p2p.Node {
		id, err := identity.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := p2p.New(context.Background(), p2p.Config{
			Identity:    id,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
			Consortium:  root.Consortium,
			Cert:        membershiptest.IssueNow(t, root, id.ID(), membership.DefaultRoles()...),
		})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a := newNode()
	a.Handle(echoProto, membership.RolePSI, echo(nil))
	for _, transport := range []string{"/tcp/", "/quic-v1"} {
		t.Run(strings.Trim(transport, "/"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b := newNode()
			var addrs []ma.Multiaddr
			for _, addr := range a.Addrs() {
				if strings.Contains(addr.String(), transport) {
					addrs = append(addrs, addr)
				}
			}
			if len(addrs) == 0 {
				t.Fatalf("a listens on %v, no %s address", a.Addrs(), transport)
			}
			cert, err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: addrs})
			if err != nil {
				t.Fatalf("Connect over %s = %v", transport, err)
			}
			if cert.PeerID != a.ID() {
				t.Errorf("Connect returned cert of %s, want %s", cert.PeerID, a.ID())
			}
			c, err := b.Open(ctx, a.ID(), echoProto, membership.RolePSI)
			if err != nil {
				t.Fatalf("Open = %v", err)
			}
			defer c.Close()
			msg := make([]byte, 1<<20)
			for i := range msg {
				msg[i] = byte(i)
			}
			if err := c.Send(ctx, msg); err != nil {
				t.Fatalf("Send = %v", err)
			}
			reply, err := c.Recv(ctx)
			if err != nil {
				t.Fatalf("Recv = %v", err)
			}
			if want := "echo:" + string(msg); string(reply) != want {
				t.Errorf("reply of %d bytes differs from the %d expected", len(reply), len(want))
			}
		})
	}
}
