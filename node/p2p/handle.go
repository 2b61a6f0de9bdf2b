package p2p

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"

	"xnode/node/membership"
	"xnode/protocol"
)

// Handle serves protocol id with h. Only verified peers whose certificate
// grants requiredRole ("" for any member) may open it; other streams are
// reset.
func (n *Node) Handle(id libp2pproto.ID, requiredRole string, h Handler) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.protos = append(n.protos, id)
	n.mu.Unlock()
	n.h.SetStreamHandler(id, func(s network.Stream) { n.serve(s, requiredRole, h) })
}

func (n *Node) serve(s network.Stream, role string, h Handler) {
	if !n.enter() {
		_ = s.Reset()
		return
	}
	defer n.wg.Done()
	p := s.Conn().RemotePeer()
	log := n.log.With("peer", p, "protocol", s.Protocol())
	if err := s.Scope().SetService(ServiceName); err != nil {
		log.Debug("refusing stream: resource scope", "err", err)
		_ = s.Reset()
		return
	}
	deadline := time.Now().Add(n.streamTO)
	_ = s.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(n.ctx, deadline)
	defer cancel()
	cert, err := n.awaitVerified(ctx, p, false)
	if err != nil {
		log.Info("refusing stream from unverified peer", "err", err)
		_ = s.Reset()
		return
	}
	if !cert.HasRole(role) {
		log.Info("refusing stream: peer lacks role", "role", role, "roles", cert.Roles)
		_ = s.Reset()
		return
	}
	c := newStreamConn(s, protocol.MaxMessageSize, cert, nil)
	// Past the deadline or on Close, any blocked read or write ends.
	stop := context.AfterFunc(ctx, func() { _ = c.Reset() })
	defer stop()
	if err := h(ctx, cert, c); err != nil {
		log.Info("stream failed", "err", err)
		_ = c.Reset()
		return
	}
	_ = c.Close()
}

// Open opens a stream for protocol id to the verified peer p, whose
// certificate must grant requiredRole ("" for any member). Connect to p
// first. The caller ends the stream with Close or Reset; Close of the node
// resets it.
func (n *Node) Open(ctx context.Context, p peer.ID, id libp2pproto.ID, requiredRole string) (StreamConn, error) {
	cert, err := n.awaitVerified(ctx, p, true)
	if err != nil {
		return nil, err
	}
	if !cert.HasRole(requiredRole) {
		return nil, fmt.Errorf("%w: %s (%s) lacks %q for %s", ErrRoleMissing, p, cert.Name, requiredRole, id)
	}
	s, err := n.h.NewStream(network.WithNoDial(ctx, "xnode protocol"), p, id)
	if err != nil {
		return nil, fmt.Errorf("failed to open %s to %s: %w", id, p, err)
	}
	if err := s.Scope().SetService(ServiceName); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("failed to open %s to %s: %w", id, p, err)
	}
	var c *streamConn
	c = newStreamConn(s, protocol.MaxMessageSize, cert, func() { n.untrack(c) })
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = s.Reset()
		return nil, ErrClosed
	}
	n.streams[c] = struct{}{}
	n.mu.Unlock()
	return c, nil
}

func (n *Node) untrack(c *streamConn) {
	n.mu.Lock()
	delete(n.streams, c)
	n.mu.Unlock()
}

// Verified returns p's certificate if p is connected and verified.
func (n *Node) Verified(p peer.ID) (*membership.Cert, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.peers[p]
	if st == nil || !st.reusable() || st.cert == nil || n.usableLocked(st.cert, n.now()) != nil {
		return nil, false
	}
	return st.cert, true
}
