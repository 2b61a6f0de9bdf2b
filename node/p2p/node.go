// Package p2p is the node's libp2p host restricted to consortium members.
//
// A [Node] wraps a libp2p host (TCP and QUIC, Noise, the node's identity key)
// and admits only verified members:
//
//   - A connection gater refuses revoked peers and, for FailureTTL, peers
//     that failed the hello handshake.
//   - On every new connection the dialer opens [HelloProtocol] and sends its
//     membership certificate; the listener verifies it (same consortium,
//     root signature, validity window, not revoked, names the very peer ID
//     Noise authenticated), answers with its own certificate, which the
//     dialer verifies the same way. A peer is verified only then.
//   - Until a peer is verified, every stream it opens to a protocol
//     registered with [Node.Handle] is reset. A peer that presents a bad
//     certificate is disconnected and remembered by the gater; one that
//     sends nothing within HelloTimeout is disconnected.
//   - Every stream checks the remote's role: [Node.Handle] checks the peer
//     that opens the stream, [Node.Open] the peer that serves it.
//
// Message flow of the hello (one stream, uvarint-length-prefixed frames of
// at most membership.MaxCertSize bytes):
//
//	dialer                          listener
//	  | -- membership.json (dialer) --> |  verify; on failure reset
//	  | <-- membership.json (listener)- |  (only to a verified peer)
//	verify; on failure disconnect
//
// libp2p's own identify protocol still runs before the hello; it reveals
// only listen addresses and protocol IDs.
//
// Streams follow the stream-handler template of CONVENTIONS.md: resource
// scope, absolute deadline, capped length-prefixed frames, Reset on error,
// Close on success, no error text to the peer.
package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"xnode/node/identity"
	"xnode/node/membership"
	"xnode/protocol"
)

// HelloProtocol is the membership handshake's protocol ID.
const HelloProtocol libp2pproto.ID = "/xnode/hello/1.0.0"

// ServiceName is the resource-manager service of every xnode stream.
const ServiceName = "xnode"

// Defaults for Config.
const (
	DefaultHelloTimeout  = 10 * time.Second
	DefaultStreamTimeout = 30 * time.Minute
	DefaultFailureTTL    = 10 * time.Minute
)

var (
	// ErrBlocked: the peer is revoked or recently failed the handshake.
	ErrBlocked = errors.New("p2p: peer refused")
	// ErrHelloFailed: the membership handshake with the peer failed. A
	// failure to verify the peer's certificate also wraps the membership
	// error (for example membership.ErrExpired).
	ErrHelloFailed = errors.New("p2p: membership handshake failed")
	// ErrNotVerified: the peer is not connected or not verified yet.
	ErrNotVerified = errors.New("p2p: peer not verified")
	// ErrRoleMissing: the peer's certificate lacks the protocol's role.
	ErrRoleMissing = errors.New("p2p: peer lacks the role for this protocol")
	// ErrClosed: the node is closed.
	ErrClosed = errors.New("p2p: node closed")
)

// Config configures a Node.
type Config struct {
	// Identity is the node key. New needs it; NewWithHost uses the host's.
	Identity *identity.Identity
	// ListenAddrs are multiaddrs such as /ip4/0.0.0.0/tcp/4001 and
	// /ip4/0.0.0.0/udp/4001/quic-v1. Empty: listen nowhere (dial only).
	ListenAddrs []string
	// Consortium, Cert and Revocations come from membership.LoadNode.
	Consortium  *membership.Consortium
	Cert        *membership.Cert
	Revocations *membership.RevocationList
	Logger      *slog.Logger

	// HelloTimeout bounds the handshake (default DefaultHelloTimeout).
	HelloTimeout time.Duration
	// StreamTimeout is the absolute deadline of an accepted protocol
	// stream (default DefaultStreamTimeout).
	StreamTimeout time.Duration
	// FailureTTL is how long a peer that failed the handshake is refused
	// (default DefaultFailureTTL).
	FailureTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Peer is a verified peer.
type Peer struct {
	ID   peer.ID
	Cert *membership.Cert
}

// Handler serves one accepted stream. remote is the verified certificate of
// the peer that opened it; ctx ends at the stream's absolute deadline or
// when the node closes. Returning nil closes the stream, an error resets it
// (the error is logged, never sent).
type Handler func(ctx context.Context, remote *membership.Cert, c protocol.Conn) error

// Node is a libp2p host that talks only to verified consortium members.
type Node struct {
	h         host.Host
	ownsHost  bool
	cons      *membership.Consortium
	cert      *membership.Cert
	certBytes []byte
	log       *slog.Logger
	gater     *gater
	now       func() time.Time
	helloTO   time.Duration
	streamTO  time.Duration
	notifiee  *network.NotifyBundle
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	mu sync.Mutex
	// closed is set once by Close; no goroutine starts after it.
	closed bool
	// peers holds the handshake state of each connected peer.
	peers map[peer.ID]*peerState
	// rl is the revocation list in force (nil: none).
	rl *membership.RevocationList
	// protos are the protocols registered with Handle.
	protos []libp2pproto.ID
	// streams are the open outbound StreamConns, reset on Close.
	streams map[*streamConn]struct{}
}

// New builds a libp2p host (TCP, QUIC, Noise, the identity key, the
// membership gater) and the node over it. Close closes the host.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Identity == nil {
		return nil, errors.New("p2p: no node identity")
	}
	cfg = withDefaults(cfg)
	g := newGater(cfg.Now, cfg.FailureTTL, cfg.Revocations)
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Identity.PrivKey()),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.ConnectionGater(g),
		libp2p.DisableRelay(),
		libp2p.Ping(false),
		libp2p.UserAgent("xnode"),
		// The node exports its own metrics; libp2p's would register
		// globally once per host.
		libp2p.DisableMetrics(),
	}
	if len(cfg.ListenAddrs) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(cfg.ListenAddrs...))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to start libp2p host: %w", err)
	}
	n, err := newNode(ctx, h, cfg, g, true)
	if err != nil {
		h.Close()
		return nil, err
	}
	return n, nil
}

// NewWithHost runs the node over an existing host, such as a mocknet peer
// in tests. The node cannot install its gater in such a host, so it closes
// every connection from a refused peer as soon as it is reported. Close
// leaves the host open.
func NewWithHost(ctx context.Context, h host.Host, cfg Config) (*Node, error) {
	if cfg.Identity != nil && cfg.Identity.ID() != h.ID() {
		return nil, fmt.Errorf("p2p: identity %s is not the host's peer ID %s", cfg.Identity.ID(), h.ID())
	}
	cfg = withDefaults(cfg)
	return newNode(ctx, h, cfg, newGater(cfg.Now, cfg.FailureTTL, cfg.Revocations), false)
}

func withDefaults(cfg Config) Config {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = DefaultHelloTimeout
	}
	if cfg.StreamTimeout <= 0 {
		cfg.StreamTimeout = DefaultStreamTimeout
	}
	if cfg.FailureTTL <= 0 {
		cfg.FailureTTL = DefaultFailureTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

func newNode(ctx context.Context, h host.Host, cfg Config, g *gater, owns bool) (*Node, error) {
	if cfg.Consortium == nil || cfg.Cert == nil {
		return nil, errors.New("p2p: no consortium or membership certificate: ask the consortium operator to admit this node")
	}
	if cfg.Revocations != nil {
		if err := cfg.Revocations.Verify(cfg.Consortium); err != nil {
			return nil, fmt.Errorf("p2p: revocation list: %w", err)
		}
	}
	if err := membership.VerifyPeer(cfg.Cert, cfg.Consortium, h.ID(), cfg.Now(), cfg.Revocations); err != nil {
		return nil, fmt.Errorf("p2p: this node's own membership certificate does not verify (ask the consortium operator for a new one): %w", err)
	}
	certBytes, err := cfg.Cert.Marshal()
	if err != nil {
		return nil, fmt.Errorf("p2p: failed to encode certificate: %w", err)
	}
	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n := &Node{
		h:         h,
		ownsHost:  owns,
		cons:      cfg.Consortium,
		cert:      cfg.Cert,
		certBytes: certBytes,
		log:       cfg.Logger,
		gater:     g,
		now:       cfg.Now,
		helloTO:   cfg.HelloTimeout,
		streamTO:  cfg.StreamTimeout,
		ctx:       nctx,
		cancel:    cancel,
		peers:     make(map[peer.ID]*peerState),
		rl:        cfg.Revocations,
		streams:   make(map[*streamConn]struct{}),
	}
	n.notifiee = &network.NotifyBundle{ConnectedF: n.connected, DisconnectedF: n.disconnected}
	h.SetStreamHandler(HelloProtocol, n.serveHello)
	h.Network().Notify(n.notifiee)
	// Connections that existed before the node: check them too.
	for _, c := range h.Network().Conns() {
		n.connected(h.Network(), c)
	}
	return n, nil
}

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.h.ID() }

// Addrs returns the addresses the host listens on.
func (n *Node) Addrs() []ma.Multiaddr { return n.h.Addrs() }

// AddrInfo returns the node's peer ID and addresses, for a peer's Connect.
func (n *Node) AddrInfo() peer.AddrInfo { return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()} }

// Cert returns the node's own certificate.
func (n *Node) Cert() *membership.Cert { return n.cert }

// Connect dials ai (unless already connected) and waits until the hello
// handshake has verified the peer. It returns the peer's certificate, or an
// error wrapping ErrBlocked, ErrHelloFailed (and the membership error) or
// the dial error.
func (n *Node) Connect(ctx context.Context, ai peer.AddrInfo) (*membership.Cert, error) {
	if ai.ID == n.h.ID() {
		return nil, errors.New("p2p: cannot connect to self")
	}
	if b, why := n.gater.blocked(ai.ID); b {
		return nil, fmt.Errorf("%w: %s %s", ErrBlocked, ai.ID, why)
	}
	if err := n.h.Connect(ctx, ai); err != nil {
		return nil, fmt.Errorf("failed to connect to %s: %w", ai.ID, err)
	}
	cert, err := n.awaitVerified(ctx, ai.ID, true)
	if errors.Is(err, ErrNotVerified) && !errors.Is(err, ErrBlocked) {
		// The peer dropped the connection we just made: it refused us.
		return nil, fmt.Errorf("%w: %w", ErrHelloFailed, err)
	}
	return cert, err
}

// Peers returns the connected peers whose certificates verified and are
// still valid and unrevoked, sorted by peer ID.
func (n *Node) Peers() []Peer {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Peer
	for id, st := range n.peers {
		if st.reusable() && st.cert != nil && n.usableLocked(st.cert, now) == nil {
			out = append(out, Peer{ID: id, Cert: st.cert})
		}
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

// ReloadRevocations puts a new revocation list in force. It refuses a list
// that does not verify or is older than the current one, and disconnects
// every connected peer the new list revokes.
func (n *Node) ReloadRevocations(rl *membership.RevocationList) error {
	if err := rl.Verify(n.cons); err != nil {
		return fmt.Errorf("failed to load revocation list: %w", err)
	}
	n.mu.Lock()
	if n.rl != nil && rl.Version < n.rl.Version {
		cur := n.rl.Version
		n.mu.Unlock()
		return fmt.Errorf("%w: version %d, have %d", membership.ErrStaleRevocations, rl.Version, cur)
	}
	n.rl = rl
	n.gater.setRevocations(rl)
	var drop []peer.ID
	for id, st := range n.peers {
		if rl.IsRevoked(id) {
			n.finishLocked(st, nil, fmt.Errorf("%w: %w", ErrHelloFailed, membership.ErrRevoked))
			delete(n.peers, id)
			drop = append(drop, id)
		}
	}
	n.mu.Unlock()
	for _, id := range drop {
		n.log.Info("disconnecting revoked peer", "peer", id)
		_ = n.h.Network().ClosePeer(id)
	}
	return nil
}

// Close stops serving, resets open streams, waits for the node's
// goroutines and, if New built the host, closes it. It is safe to call
// more than once.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	protos := n.protos
	streams := make([]*streamConn, 0, len(n.streams))
	for s := range n.streams {
		streams = append(streams, s)
	}
	n.mu.Unlock()

	n.cancel()
	n.h.Network().StopNotify(n.notifiee)
	n.h.RemoveStreamHandler(HelloProtocol)
	for _, p := range protos {
		n.h.RemoveStreamHandler(p)
	}
	for _, s := range streams {
		_ = s.Reset()
	}
	n.wg.Wait()
	if n.ownsHost {
		return n.h.Close()
	}
	return nil
}

// goLocked runs f in a goroutine the node waits for on Close; n.mu must be
// held. It reports false, without running f, once the node is closed.
func (n *Node) goLocked(f func()) bool {
	if n.closed {
		return false
	}
	n.wg.Go(f)
	return true
}

// enter registers a goroutine libp2p started (a stream handler) with the
// node's WaitGroup; the caller calls n.wg.Done when enter returned true.
func (n *Node) enter() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	return true
}

// usableLocked checks that a verified certificate is still valid and its
// peer unrevoked; n.mu must be held.
func (n *Node) usableLocked(c *membership.Cert, now time.Time) error {
	if err := c.ValidAt(now); err != nil {
		return err
	}
	if n.rl.IsRevoked(c.PeerID) {
		return membership.ErrRevoked
	}
	return nil
}
