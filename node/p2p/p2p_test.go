package p2p_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"xnode/node/identity"
	"xnode/node/membership"
	"xnode/node/membership/membershiptest"
	"xnode/node/p2p"
	"xnode/protocol"
)

const echoProto = "/xnode/test-echo/1.0.0"

// clock is an adjustable clock shared by the nodes of a test.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

type net struct {
	t     *testing.T
	mn    mocknet.Mocknet
	root  *membership.Root
	clock *clock
	port  int
}

func newNet(t *testing.T) *net {
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	return &net{t: t, mn: mn, root: membershiptest.NewRoot(t, "pilot"), clock: &clock{}}
}

// host adds a mocknet peer with a fresh Ed25519 identity, linked to all.
func (nw *net) host() (host.Host, *identity.Identity) {
	nw.t.Helper()
	id, err := identity.Generate(nil)
	if err != nil {
		nw.t.Fatal(err)
	}
	nw.port++
	addr := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 10000+nw.port))
	h, err := nw.mn.AddPeer(id.PrivKey(), addr)
	if err != nil {
		nw.t.Fatal(err)
	}
	if err := nw.mn.LinkAll(); err != nil {
		nw.t.Fatal(err)
	}
	return h, id
}

type member struct {
	*p2p.Node
	h    host.Host
	cert *membership.Cert
}

func (nw *net) member(rl *membership.RevocationList, roles ...string) *member {
	nw.t.Helper()
	h, id := nw.host()
	cert := membershiptest.IssueNow(nw.t, nw.root, id.ID(), roles...)
	n, err := p2p.NewWithHost(context.Background(), h, p2p.Config{
		Identity:     id,
		Consortium:   nw.root.Consortium,
		Cert:         cert,
		Revocations:  rl,
		HelloTimeout: 2 * time.Second,
		Now:          nw.clock.now,
	})
	if err != nil {
		nw.t.Fatalf("NewWithHost: %v", err)
	}
	nw.t.Cleanup(func() { n.Close() })
	return &member{Node: n, h: h, cert: cert}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo serves echoProto: it answers every message with "echo:"+msg until
// the client closes its side.
func echo(got chan<- *membership.Cert) p2p.Handler {
	return func(ctx context.Context, remote *membership.Cert, c protocol.Conn) error {
		if got != nil {
			got <- remote
		}
		for {
			msg, err := c.Recv(ctx)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := c.Send(ctx, append([]byte("echo:"), msg...)); err != nil {
				return err
			}
		}
	}
}

func connect(t *testing.T, a, b *member) {
	t.Helper()
	cert, err := a.Connect(ctxT(t), b.AddrInfo())
	if err != nil {
		t.Fatalf("Connect(member) = %v, want nil", err)
	}
	if cert.PeerID != b.ID() {
		t.Fatalf("Connect returned cert of %s, want %s", cert.PeerID, b.ID())
	}
}

func TestMembersExchangeMessages(t *testing.T) {
	nw := newNet(t)
	a := nw.member(nil, membership.DefaultRoles()...)
	b := nw.member(nil, membership.DefaultRoles()...)
	got := make(chan *membership.Cert, 2)
	a.Handle(echoProto, membership.RolePSI, echo(got))
	b.Handle(echoProto, membership.RolePSI, echo(got))
	connect(t, a, b)

	for _, dir := range []struct {
		name     string
		from, to *member
	}{{"a to b", a, b}, {"b to a", b, a}} {
		t.Run(dir.name, func(t *testing.T) {
			ctx := ctxT(t)
			c, err := dir.from.Open(ctx, dir.to.ID(), echoProto, membership.RolePSI)
			if err != nil {
				t.Fatalf("Open() = %v", err)
			}
			if c.Remote().PeerID != dir.to.ID() {
				t.Errorf("Remote() = %s, want %s", c.Remote().PeerID, dir.to.ID())
			}
			for i, msg := range [][]byte{[]byte("hello"), {}, make([]byte, 200<<10)} {
				if err := c.Send(ctx, msg); err != nil {
					t.Fatalf("Send #%d = %v", i, err)
				}
				reply, err := c.Recv(ctx)
				if err != nil {
					t.Fatalf("Recv #%d = %v", i, err)
				}
				if want := "echo:" + string(msg); string(reply) != want {
					t.Errorf("reply #%d has %d bytes, want %d", i, len(reply), len(want))
				}
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close() = %v", err)
			}
			if remote := <-got; remote.PeerID != dir.from.ID() || remote.Name != dir.from.cert.Name {
				t.Errorf("handler saw remote %v, want %s", remote, dir.from.ID())
			}
		})
	}
	for _, m := range []*member{a, b} {
		peers := m.Peers()
		if len(peers) != 1 {
			t.Errorf("Peers() of %s = %v, want the other member", m.ID(), peers)
		}
	}
}

// rogue is a bare host that speaks the hello protocol with whatever bytes
// the test gives it.
type rogue struct {
	h    host.Host
	id   *identity.Identity
	cert []byte // answered to an incoming hello; nil: reset
}

func (nw *net) rogue(cert []byte) *rogue {
	h, id := nw.host()
	r := &rogue{h: h, id: id, cert: cert}
	h.SetStreamHandler(p2p.HelloProtocol, func(s network.Stream) {
		defer s.Close()
		if _, err := readFrame(s); err != nil || r.cert == nil {
			s.Reset()
			return
		}
		writeFrame(s, r.cert)
	})
	return r
}

// hello dials target and sends the rogue's certificate; it returns the
// answer or the error reading it.
func (r *rogue) hello(ctx context.Context, target *member) ([]byte, error) {
	if err := r.h.Connect(ctx, target.AddrInfo()); err != nil {
		return nil, err
	}
	s, err := r.h.NewStream(ctx, target.ID(), p2p.HelloProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if r.cert != nil {
		if err := writeFrame(s, r.cert); err != nil {
			return nil, err
		}
	}
	return readFrame(s)
}

func writeFrame(w io.Writer, msg []byte) error {
	_, err := w.Write(append(binary.AppendUvarint(nil, uint64(len(msg))), msg...))
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var hdr [1]byte
	var n uint64
	for shift := 0; ; shift += 7 {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, err
		}
		n |= uint64(hdr[0]&0x7f) << shift
		if hdr[0] < 0x80 {
			break
		}
	}
	if n > 1<<20 {
		return nil, errors.New("frame too large")
	}
	buf := make([]byte, n)
	_, err := io.ReadFull(r, buf)
	return buf, err
}

func marshal(t *testing.T, c *membership.Cert) []byte {
	t.Helper()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// badCerts are the certificates a non-member might present; each case
// builds one for the rogue's own peer ID.
func badCerts(nw *net) []struct {
	name string
	make func(id peer.ID) []byte
	want error
} {
	t := nw.t
	other := membershiptest.NewRoot(t, "other")
	now := time.Now()
	return []struct {
		name string
		make func(id peer.ID) []byte
		want error
	}{
		{"garbage", func(peer.ID) []byte { return []byte("let me in") }, membership.ErrMalformed},
		{"other consortium", func(id peer.ID) []byte {
			return marshal(t, membershiptest.IssueNow(t, other, id, membership.DefaultRoles()...))
		}, membership.ErrWrongConsortium},
		{"forged signature", func(id peer.ID) []byte {
			c := membershiptest.IssueNow(t, other, id, membership.DefaultRoles()...)
			c.ConsortiumID = nw.root.Consortium.ID
			return marshal(t, c)
		}, membership.ErrBadSignature},
		{"expired", func(id peer.ID) []byte {
			return marshal(t, membershiptest.Issue(t, nw.root, id, nil, now.Add(-48*time.Hour), now.Add(-time.Hour)))
		}, membership.ErrExpired},
		{"not yet valid", func(id peer.ID) []byte {
			return marshal(t, membershiptest.Issue(t, nw.root, id, nil, now.Add(time.Hour), now.Add(48*time.Hour)))
		}, membership.ErrNotYetValid},
		{"another member's cert", func(peer.ID) []byte {
			other, _ := identity.Generate(nil)
			return marshal(t, membershiptest.IssueNow(t, nw.root, other.ID()))
		}, membership.ErrWrongPeer},
	}
}

// A member dialing a non-member gets the precise reason and remembers it.
func TestConnectRefusesNonMember(t *testing.T) {
	nw := newNet(t)
	a := nw.member(nil, membership.DefaultRoles()...)
	for _, tc := range badCerts(nw) {
		t.Run(tc.name, func(t *testing.T) {
			r := nw.rogue(nil)
			r.cert = tc.make(r.id.ID())
			_, err := a.Connect(ctxT(t), peer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()})
			if !errors.Is(err, p2p.ErrHelloFailed) || !errors.Is(err, tc.want) {
				t.Fatalf("Connect(non-member) = %v, want ErrHelloFailed and %v", err, tc.want)
			}
			waitFor(t, "disconnect", func() bool { return a.h.Network().Connectedness(r.h.ID()) != network.Connected })
			if _, err := a.Connect(ctxT(t), peer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()}); !errors.Is(err, p2p.ErrBlocked) {
				t.Errorf("second Connect(non-member) = %v, want ErrBlocked", err)
			}
			if len(a.Peers()) != 0 {
				t.Errorf("Peers() = %v, want none", a.Peers())
			}
		})
	}
	t.Run("no hello handler", func(t *testing.T) {
		h, _ := nw.host()
		_, err := a.Connect(ctxT(t), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
		if !errors.Is(err, p2p.ErrHelloFailed) {
			t.Fatalf("Connect(plain libp2p host) = %v, want ErrHelloFailed", err)
		}
	})
}

// A non-member dialing a member is refused and cannot open protocol streams.
func TestAcceptRefusesNonMember(t *testing.T) {
	nw := newNet(t)
	a := nw.member(nil, membership.DefaultRoles()...)
	var served atomic.Int32
	a.Handle(echoProto, "", func(context.Context, *membership.Cert, protocol.Conn) error {
		served.Add(1)
		return nil
	})
	cases := badCerts(nw)
	cases = append(cases, struct {
		name string
		make func(id peer.ID) []byte
		want error
	}{"no certificate", func(peer.ID) []byte { return nil }, nil})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			r := nw.rogue(nil)
			r.cert = tc.make(r.id.ID())
			if err := r.h.Connect(ctx, a.AddrInfo()); err != nil {
				t.Fatal(err)
			}
			// A protocol stream instead of the hello is refused.
			if r.cert == nil {
				s, err := r.h.NewStream(ctx, a.ID(), echoProto)
				if err != nil {
					t.Fatal(err)
				}
				writeFrame(s, []byte("x"))
				if _, err := readFrame(s); err == nil {
					t.Errorf("protocol stream from unverified peer answered, want reset")
				}
			}
			if r.cert != nil {
				if answer, err := r.hello(ctx, a); err == nil {
					t.Fatalf("hello with bad cert answered %q, want reset", answer)
				}
			}
			waitFor(t, "disconnect", func() bool { return r.h.Network().Connectedness(a.ID()) != network.Connected })
			if r.cert != nil {
				// Remembered: a new connection is closed at once.
				if _, err := a.Connect(ctx, peer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()}); !errors.Is(err, p2p.ErrBlocked) {
					t.Errorf("Connect(refused peer) = %v, want ErrBlocked", err)
				}
			}
		})
	}
	if n := served.Load(); n != 0 {
		t.Errorf("handler served %d streams from non-members, want 0", n)
	}
}

func TestExpiredPeerRefused(t *testing.T) {
	nw := newNet(t)
	a := nw.member(nil, membership.DefaultRoles()...)
	b := nw.member(nil, membership.DefaultRoles()...)
	a.Handle(echoProto, "", echo(nil))
	connect(t, a, b)
	// The clock passes b's expiry: a connected peer becomes unusable.
	nw.clock.advance(48 * time.Hour)
	_, err := b.Open(ctxT(t), a.ID(), echoProto, "")
	if !errors.Is(err, p2p.ErrNotVerified) || !errors.Is(err, membership.ErrExpired) {
		t.Errorf("Open(expired peer) = %v, want ErrNotVerified and ErrExpired", err)
	}
	if len(a.Peers()) != 0 {
		t.Errorf("Peers() after expiry = %v, want none", a.Peers())
	}
	// A new handshake refusing an expired certificate is a case of
	// badCerts.
}

func TestRevokedPeer(t *testing.T) {
	nw := newNet(t)
	a := nw.member(nil, membership.DefaultRoles()...)
	b := nw.member(nil, membership.DefaultRoles()...)
	a.Handle(echoProto, "", echo(nil))
	connect(t, a, b)
	stream, err := b.Open(ctxT(t), a.ID(), echoProto, "")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()

	rl := membershiptest.Revocations(t, nw.root, 2, b.ID())
	if err := a.ReloadRevocations(rl); err != nil {
		t.Fatalf("ReloadRevocations = %v", err)
	}
	waitFor(t, "revoked peer disconnected", func() bool {
		return a.h.Network().Connectedness(b.ID()) != network.Connected
	})
	if _, err := stream.Recv(ctxT(t)); err == nil {
		t.Errorf("Recv on a revoked peer's stream = nil error, want one")
	}
	if len(a.Peers()) != 0 {
		t.Errorf("Peers() after revocation = %v, want none", a.Peers())
	}
	if _, err := a.Connect(ctxT(t), b.AddrInfo()); !errors.Is(err, p2p.ErrBlocked) {
		t.Errorf("Connect(revoked) = %v, want ErrBlocked", err)
	}
	waitFor(t, "revoked peer sees the disconnect", func() bool {
		return b.h.Network().Connectedness(a.ID()) != network.Connected
	})
	if _, err := b.Connect(ctxT(t), a.AddrInfo()); !errors.Is(err, p2p.ErrHelloFailed) {
		t.Errorf("revoked peer's Connect = %v, want ErrHelloFailed", err)
	}
	if err := a.ReloadRevocations(membershiptest.Revocations(t, nw.root, 1)); !errors.Is(err, membership.ErrStaleRevocations) {
		t.Errorf("ReloadRevocations(older) = %v, want ErrStaleRevocations", err)
	}
	other := membershiptest.NewRoot(t, "other")
	if err := a.ReloadRevocations(membershiptest.Revocations(t, other, 9)); !errors.Is(err, membership.ErrWrongConsortium) {
		t.Errorf("ReloadRevocations(other consortium) = %v, want ErrWrongConsortium", err)
	}

	// A node that starts with the list refuses b at connect.
	c := nw.member(rl, membership.DefaultRoles()...)
	if _, err := b.Connect(ctxT(t), c.AddrInfo()); !errors.Is(err, p2p.ErrHelloFailed) {
		t.Errorf("revoked peer's Connect to a new node = %v, want ErrHelloFailed", err)
	}
	if _, err := c.Connect(ctxT(t), b.AddrInfo()); !errors.Is(err, p2p.ErrBlocked) {
		t.Errorf("Connect(revoked) from a new node = %v, want ErrBlocked", err)
	}
}

func TestRoleChecked(t *testing.T) {
	nw := newNet(t)
	a := nw.member(nil, membership.RoleRiskList, membership.RolePSI)
	b := nw.member(nil, membership.RolePSI)
	var served atomic.Int32
	counting := func(ctx context.Context, remote *membership.Cert, c protocol.Conn) error {
		served.Add(1)
		return echo(nil)(ctx, remote, c)
	}
	a.Handle("/xnode/test-risk/1.0.0", membership.RoleRiskList, counting)
	b.Handle("/xnode/test-risk/1.0.0", membership.RoleRiskList, counting)
	connect(t, a, b)
	ctx := ctxT(t)

	// Open checks the serving peer's role.
	if _, err := a.Open(ctx, b.ID(), "/xnode/test-risk/1.0.0", membership.RoleRiskList); !errors.Is(err, p2p.ErrRoleMissing) {
		t.Errorf("Open(peer without role) = %v, want ErrRoleMissing", err)
	}
	// Handle checks the opening peer's role: b lacks risk-list, so a
	// resets b's stream without serving it.
	c, err := b.Open(ctx, a.ID(), "/xnode/test-risk/1.0.0", membership.RoleRiskList)
	if err != nil {
		t.Fatalf("Open(peer with role) = %v", err)
	}
	c.Send(ctx, []byte("x"))
	if _, err := c.Recv(ctx); err == nil {
		t.Errorf("stream from a peer without the role was answered, want reset")
	}
	c.Reset()
	if n := served.Load(); n != 0 {
		t.Errorf("handler ran %d times for a peer without the role, want 0", n)
	}
}

func TestOversizedFrameRefused(t *testing.T) {
	nw := newNet(t)
	a := nw.member(nil, membership.DefaultRoles()...)
	b := nw.member(nil, membership.DefaultRoles()...)
	errs := make(chan error, 1)
	a.Handle(echoProto, "", func(ctx context.Context, _ *membership.Cert, c protocol.Conn) error {
		_, err := c.Recv(ctx)
		errs <- err
		return err
	})
	connect(t, a, b)
	ctx := ctxT(t)
	s, err := b.h.NewStream(ctx, a.ID(), echoProto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	// A prefix claiming 1 TiB, and nothing after it.
	if _, err := s.Write(binary.AppendUvarint(nil, 1<<40)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, protocol.ErrMessageTooLarge) {
			t.Errorf("handler Recv = %v, want ErrMessageTooLarge", err)
		}
	case <-ctx.Done():
		t.Fatal("handler did not refuse the oversized frame")
	}
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Errorf("stream after oversized frame readable, want reset")
	}

	// The sender refuses to send one, too.
	c, err := b.Open(ctx, a.ID(), echoProto, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Reset()
	if err := c.Send(ctx, make([]byte, protocol.MaxMessageSize+1)); !errors.Is(err, protocol.ErrMessageTooLarge) {
		t.Errorf("Send(MaxMessageSize+1) = %v, want ErrMessageTooLarge", err)
	}
}

func TestPeerResetMidStream(t *testing.T) {
	nw := newNet(t)
	a := nw.member(nil, membership.DefaultRoles()...)
	b := nw.member(nil, membership.DefaultRoles()...)
	handlerErrs := make(chan error, 100)
	a.Handle(echoProto, "", func(ctx context.Context, _ *membership.Cert, c protocol.Conn) error {
		err := func() error {
			for {
				msg, err := c.Recv(ctx)
				if err != nil {
					return err
				}
				if string(msg) == "reset me" {
					return errors.New("internal detail that must not reach the peer")
				}
				if err := c.Send(ctx, msg); err != nil {
					return err
				}
			}
		}()
		handlerErrs <- err
		return err
	})
	connect(t, a, b)
	ctx := ctxT(t)
	// Warm up, so lazily started libp2p goroutines count in the baseline.
	if c, err := b.Open(ctx, a.ID(), echoProto, ""); err == nil {
		c.Send(ctx, []byte("x"))
		c.Recv(ctx)
		c.Close()
		<-handlerErrs
	}
	before := runtime.NumGoroutine()

	for i := range 20 {
		c, err := b.Open(ctx, a.ID(), echoProto, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(ctx, []byte("one")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Recv(ctx); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			// The client resets mid-stream: the handler's Recv fails.
			c.Reset()
			select {
			case err := <-handlerErrs:
				if err == nil || errors.Is(err, io.EOF) {
					t.Errorf("handler after peer reset: err = %v, want a reset error", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("handler hung after the peer reset the stream")
			}
		} else {
			// The handler fails: the client's Recv fails, without the
			// handler's error text.
			c.Send(ctx, []byte("reset me"))
			_, err := c.Recv(ctx)
			if err == nil {
				t.Fatal("Recv after handler error = nil, want an error")
			}
			if got := err.Error(); contains(got, "internal detail") {
				t.Errorf("client saw the handler's error text: %q", got)
			}
			<-handlerErrs
			c.Reset()
		}
	}
	// A blocked Recv returns when its context ends.
	c, err := b.Open(ctx, a.ID(), echoProto, "")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.Recv(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Recv past its deadline = %v, want DeadlineExceeded", err)
	}
	c.Reset()
	<-handlerErrs

	var after int
	for range 200 {
		if after = runtime.NumGoroutine(); after <= before {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after > before {
		t.Errorf("goroutines: %d before, %d after 21 streams, want no growth", before, after)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestCloseTwiceAndStopsServing(t *testing.T) {
	nw := newNet(t)
	a := nw.member(nil, membership.DefaultRoles()...)
	b := nw.member(nil, membership.DefaultRoles()...)
	var wg sync.WaitGroup
	block := make(chan struct{})
	a.Handle(echoProto, "", func(ctx context.Context, _ *membership.Cert, c protocol.Conn) error {
		close(block)
		_, err := c.Recv(ctx) // blocks until Close ends it
		return err
	})
	connect(t, a, b)
	c, err := b.Open(ctxT(t), a.ID(), echoProto, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Reset()
	c.Send(ctxT(t), []byte("x"))
	<-block
	wg.Add(1)
	done := make(chan error, 1)
	go func() { defer wg.Done(); done <- a.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close() = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a handler blocked in Recv")
	}
	wg.Wait()
	if err := a.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	if _, err := a.Open(ctxT(t), b.ID(), echoProto, ""); !errors.Is(err, p2p.ErrClosed) {
		t.Errorf("Open after Close = %v, want ErrClosed", err)
	}
}
