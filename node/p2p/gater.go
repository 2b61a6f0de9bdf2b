package p2p

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"xnode/node/membership"
)

// maxFailures bounds how many failed peers the gater remembers.
const maxFailures = 4096

// gater refuses revoked peers and, for a while, peers that failed the hello
// handshake. It is the host's connection gater; with a host it did not
// build (mocknet), the node applies it on every new connection instead.
type gater struct {
	now func() time.Time
	ttl time.Duration

	mu sync.Mutex
	// revoked is the revocation list in force (nil: none).
	revoked *membership.RevocationList
	// failed maps a peer to when it may try again.
	failed map[peer.ID]time.Time
}

var _ connmgr.ConnectionGater = (*gater)(nil)

func newGater(now func() time.Time, ttl time.Duration, rl *membership.RevocationList) *gater {
	return &gater{now: now, ttl: ttl, revoked: rl, failed: make(map[peer.ID]time.Time)}
}

// blocked reports whether p is refused, and why.
func (g *gater) blocked(p peer.ID) (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.revoked.IsRevoked(p) {
		return true, "revoked"
	}
	if until, ok := g.failed[p]; ok {
		if g.now().Before(until) {
			return true, "failed the membership handshake"
		}
		delete(g.failed, p)
	}
	return false, ""
}

// remember refuses p for the gater's ttl.
func (g *gater) remember(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if len(g.failed) >= maxFailures {
		for id, until := range g.failed {
			if !now.Before(until) {
				delete(g.failed, id)
			}
		}
		// Still full: forget an arbitrary entry rather than grow.
		for id := range g.failed {
			if len(g.failed) < maxFailures {
				break
			}
			delete(g.failed, id)
		}
	}
	g.failed[p] = now.Add(g.ttl)
}

func (g *gater) setRevocations(rl *membership.RevocationList) {
	g.mu.Lock()
	g.revoked = rl
	g.mu.Unlock()
}

func (g *gater) allow(p peer.ID) bool {
	b, _ := g.blocked(p)
	return !b
}

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return g.allow(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allow(p) }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allow(p)
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
