package p2p

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"xnode/node/membership"
	"xnode/protocol"
)

// peerState is the handshake state of one connected peer. A new state is
// made for each run of the handshake; done is closed when it ends.
type peerState struct {
	done chan struct{}
	// The fields below are guarded by Node.mu.

	// cert is set when the peer verified; err when the handshake failed.
	cert *membership.Cert
	err  error
	// conn is the connection the handshake verified; once it is closed the
	// state is stale and the next use runs the handshake again.
	conn network.Conn
	// client and waiter record the goroutines started for this state.
	client bool
	waiter bool
}

func newPeerState() *peerState { return &peerState{done: make(chan struct{})} }

// reusable reports whether the state is pending or verified over a live
// connection.
func (st *peerState) reusable() bool {
	if !st.finished() {
		return true
	}
	return st.err == nil && st.conn != nil && !st.conn.IsClosed()
}

func (st *peerState) finished() bool {
	select {
	case <-st.done:
		return true
	default:
		return false
	}
}

// stateLocked returns p's current handshake state, making a new one if
// there is none or the last one failed or went stale; n.mu must be held.
func (n *Node) stateLocked(p peer.ID) *peerState {
	st := n.peers[p]
	if st == nil || !st.reusable() {
		st = newPeerState()
		n.peers[p] = st
	}
	return st
}

// finishLocked ends a handshake with a certificate or an error; n.mu must
// be held. A finished state does not change.
func (n *Node) finishLocked(st *peerState, cert *membership.Cert, err error) {
	if st.finished() {
		return
	}
	st.cert, st.err = cert, err
	close(st.done)
}

// connected runs for every new connection (the network's notifiee).
func (n *Node) connected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	n.mu.Lock()
	defer n.mu.Unlock()
	if b, why := n.gater.blocked(p); b {
		n.log.Debug("closing connection from refused peer", "peer", p, "reason", why)
		n.goLocked(func() { _ = c.Close() })
		return
	}
	st := n.stateLocked(p)
	if st.finished() {
		return // verified on an earlier connection
	}
	if c.Stat().Direction == network.DirOutbound && !st.client {
		st.client = true
		n.goLocked(func() { n.helloClient(p, st) })
	}
	if !st.waiter {
		st.waiter = true
		n.goLocked(func() { n.awaitHello(p, st) })
	}
}

// disconnected forgets a peer once its last connection is gone, so that a
// new connection runs the handshake again.
func (n *Node) disconnected(nw network.Network, c network.Conn) {
	p := c.RemotePeer()
	n.mu.Lock()
	defer n.mu.Unlock()
	if nw.Connectedness(p) == network.Connected {
		return
	}
	if st := n.peers[p]; st != nil {
		n.finishLocked(st, nil, fmt.Errorf("%w: %s disconnected", ErrHelloFailed, p))
		delete(n.peers, p)
	}
}

// awaitHello disconnects p if its handshake has not ended in time.
func (n *Node) awaitHello(p peer.ID, st *peerState) {
	t := time.NewTimer(n.helloTO)
	defer t.Stop()
	select {
	case <-st.done:
	case <-n.ctx.Done():
	case <-t.C:
		n.fail(p, st, fmt.Errorf("%w: no handshake within %s", ErrHelloFailed, n.helloTO), false)
	}
}

// fail ends p's handshake with err and disconnects p; if remember, the
// gater refuses p for a while.
func (n *Node) fail(p peer.ID, st *peerState, err error, remember bool) {
	n.log.Info("refusing peer", "peer", p, "err", err, "remembered", remember)
	if remember {
		n.gater.remember(p)
	}
	n.mu.Lock()
	n.finishLocked(st, nil, err)
	n.goLocked(func() { _ = n.h.Network().ClosePeer(p) })
	n.mu.Unlock()
}

// verify checks a certificate presented by p at the current time and list.
func (n *Node) verify(p peer.ID, data []byte) (*membership.Cert, error) {
	cert, err := membership.ParseCert(data)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	rl := n.rl
	n.mu.Unlock()
	if err := membership.VerifyPeer(cert, n.cons, p, n.now(), rl); err != nil {
		return nil, err
	}
	return cert, nil
}

// succeed marks p verified with cert over conn.
func (n *Node) succeed(p peer.ID, cert *membership.Cert, conn network.Conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.stateLocked(p)
	if !st.finished() {
		st.conn = conn
	}
	n.finishLocked(st, cert, nil)
	n.log.Debug("peer verified", "peer", p, "name", cert.Name, "org", cert.Org)
}

// helloClient runs the dialer's side of the handshake.
func (n *Node) helloClient(p peer.ID, st *peerState) {
	ctx, cancel := context.WithTimeout(n.ctx, n.helloTO)
	defer cancel()
	s, err := n.h.NewStream(network.WithNoDial(ctx, "xnode hello"), p, HelloProtocol)
	if err != nil {
		n.fail(p, st, fmt.Errorf("%w: failed to open: %v", ErrHelloFailed, err), false)
		return
	}
	if err := s.Scope().SetService(ServiceName); err != nil {
		_ = s.Reset()
		n.fail(p, st, fmt.Errorf("%w: %v", ErrHelloFailed, err), false)
		return
	}
	_ = s.SetDeadline(time.Now().Add(n.helloTO))
	c := newStreamConn(s, membership.MaxCertSize, nil, nil)
	if err := c.Send(ctx, n.certBytes); err != nil {
		_ = c.Reset()
		n.fail(p, st, fmt.Errorf("%w: %v", ErrHelloFailed, err), false)
		return
	}
	msg, err := c.Recv(ctx)
	if err != nil {
		_ = c.Reset()
		// The listener resets the stream when it refuses our certificate.
		n.fail(p, st, fmt.Errorf("%w: peer refused or did not answer: %v", ErrHelloFailed, err),
			errors.Is(err, protocol.ErrMessageTooLarge))
		return
	}
	cert, err := n.verify(p, msg)
	if err != nil {
		n.fail(p, st, fmt.Errorf("%w: %w", ErrHelloFailed, err), true)
		_ = c.Reset()
		return
	}
	_ = c.Close()
	n.succeed(p, cert, s.Conn())
}

// serveHello runs the listener's side of the handshake.
func (n *Node) serveHello(s network.Stream) {
	if !n.enter() {
		_ = s.Reset()
		return
	}
	defer n.wg.Done()
	p := s.Conn().RemotePeer()
	if b, _ := n.gater.blocked(p); b {
		_ = s.Reset()
		return
	}
	if err := s.Scope().SetService(ServiceName); err != nil {
		_ = s.Reset()
		return
	}
	deadline := time.Now().Add(n.helloTO)
	_ = s.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(n.ctx, deadline)
	defer cancel()
	c := newStreamConn(s, membership.MaxCertSize, nil, nil)
	n.mu.Lock()
	st := n.stateLocked(p)
	n.mu.Unlock()
	msg, err := c.Recv(ctx)
	if err != nil {
		n.fail(p, st, fmt.Errorf("%w: reading certificate: %v", ErrHelloFailed, err),
			errors.Is(err, protocol.ErrMessageTooLarge))
		_ = c.Reset()
		return
	}
	cert, err := n.verify(p, msg)
	if err != nil {
		n.fail(p, st, fmt.Errorf("%w: %w", ErrHelloFailed, err), true)
		_ = c.Reset()
		return
	}
	// Verified before answering, so the dialer's first protocol stream,
	// opened once it has our answer, finds it verified.
	n.succeed(p, cert, s.Conn())
	if err := c.Send(ctx, n.certBytes); err != nil {
		_ = c.Reset()
		return
	}
	_ = c.Close()
}

// awaitVerified returns p's certificate once its handshake ends, waiting at
// most HelloTimeout (or until ctx ends). p must be connected. If p has no
// live verified state and initiate is set, this node starts the handshake
// (as after its own dial); otherwise it waits for p's.
func (n *Node) awaitVerified(ctx context.Context, p peer.ID, initiate bool) (*membership.Cert, error) {
	cert, err := n.awaitHandshake(ctx, p, initiate)
	if err != nil {
		if b, why := n.gater.blocked(p); b {
			return nil, fmt.Errorf("%w: %s %s: %w", ErrBlocked, p, why, err)
		}
	}
	return cert, err
}

func (n *Node) awaitHandshake(ctx context.Context, p peer.ID, initiate bool) (*membership.Cert, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	st := n.peers[p]
	if st == nil || !st.reusable() {
		if n.h.Network().Connectedness(p) != network.Connected {
			n.mu.Unlock()
			if st != nil && st.err != nil {
				return nil, st.err
			}
			return nil, fmt.Errorf("%w: %s is not connected", ErrNotVerified, p)
		}
		st = n.stateLocked(p)
	}
	if initiate && !st.finished() && !st.client {
		st.client = true
		n.goLocked(func() { n.helloClient(p, st) })
	}
	n.mu.Unlock()
	t := time.NewTimer(n.helloTO)
	defer t.Stop()
	select {
	case <-st.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.ctx.Done():
		return nil, ErrClosed
	case <-t.C:
		return nil, fmt.Errorf("%w: %s: no handshake within %s", ErrNotVerified, p, n.helloTO)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if st.err != nil {
		return nil, st.err
	}
	if err := n.usableLocked(st.cert, n.now()); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotVerified, p, err)
	}
	return st.cert, nil
}
