package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"xnode/node/api"
	"xnode/node/audit"
	"xnode/node/config"
	"xnode/node/membership"
)

// dialInterval is how often the node retries configured peers it is not
// connected to.
const dialInterval = 3 * time.Second

// dialPeers keeps the configured peers connected until the node closes.
func (n *Node) dialPeers() {
	t := time.NewTicker(dialInterval)
	defer t.Stop()
	for {
		n.dialOnce()
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) dialOnce() {
	n.mu.Lock()
	peers := slices.Clone(n.cfg.Peers)
	n.mu.Unlock()
	for _, p := range peers {
		ai, err := addrInfo(p.Addr)
		if err != nil {
			n.setPeerErr(p.Name, err.Error())
			continue
		}
		if _, ok := n.host.Verified(ai.ID); ok {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		_, err = n.host.Connect(ctx, *ai)
		cancel()
		if err != nil {
			if n.ctx.Err() == nil {
				n.log.Debug("peer not reachable", "peer", p.Name, "err", err)
			}
			n.setPeerErr(p.Name, err.Error())
			continue
		}
		n.setPeerErr(p.Name, "")
		n.log.Info("peer connected", "peer", p.Name, "peer_id", ai.ID)
	}
}

func (n *Node) setPeerErr(name, msg string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if msg == "" {
		delete(n.peerErr, name)
	} else {
		n.peerErr[name] = msg
	}
}

func addrInfo(addr string) (*peer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(addr)
	if err != nil {
		return nil, fmt.Errorf("bad peer address %q: %v", addr, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, fmt.Errorf("peer address %q must end in /p2p/<peer ID>: %v", addr, err)
	}
	return ai, nil
}

// watchRevocations reloads revocations.json when its content changes, so a
// revocation the operator copies into the data dir takes effect at once.
func (n *Node) watchRevocations() {
	path := filepath.Join(n.dir, membership.RevocationsFile)
	var last time.Time
	if st, err := os.Stat(path); err == nil {
		last = st.ModTime()
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		st, err := os.Stat(path)
		if err != nil || !st.ModTime().After(last) {
			continue
		}
		last = st.ModTime()
		rl, err := membership.LoadRevocations(path)
		if err == nil {
			err = n.host.ReloadRevocations(rl)
		}
		if err != nil {
			n.log.Warn("revocation list not loaded", "err", err)
			continue
		}
		n.log.Info("revocation list loaded", "version", rl.Version, "revoked", len(rl.Revoked))
		revoked := make([]string, 0, len(rl.Revoked))
		for _, r := range rl.Revoked {
			revoked = append(revoked, r.PeerID.String())
		}
		n.auditf(audit.KindMembership, "", audit.ActorLocal, map[string]any{"event": "revocations-loaded", "version": rl.Version, "revoked": revoked})
	}
}

// Resolve implements queries.Peers: a configured name, a connected member's
// certificate name, or a peer ID. It connects if needed.
func (n *Node) Resolve(ctx context.Context, nameOrID string) (peer.ID, string, error) {
	n.mu.Lock()
	var conf *config.Peer
	for _, p := range n.cfg.Peers {
		if p.Name == nameOrID || strings.HasSuffix(p.Addr, "/p2p/"+nameOrID) {
			conf = &p
			break
		}
	}
	n.mu.Unlock()
	if conf != nil {
		ai, err := addrInfo(conf.Addr)
		if err != nil {
			return "", "", fmt.Errorf("%w: %v", api.ErrInvalid, err)
		}
		if _, ok := n.host.Verified(ai.ID); !ok {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := n.host.Connect(cctx, *ai)
			cancel()
			if err != nil {
				return "", "", fmt.Errorf("%w: peer %s (%s) is not reachable: %v; check that it runs and is a member", api.ErrUnavailable, conf.Name, conf.Addr, err)
			}
		}
		return ai.ID, conf.Name, nil
	}
	for _, p := range n.host.Peers() {
		if p.Cert.Name == nameOrID || p.ID.String() == nameOrID {
			return p.ID, p.Cert.Name, nil
		}
	}
	return "", "", fmt.Errorf("%w: unknown peer %q; add it with `xnode peers add NAME MULTIADDR` (see `xnode peers list`)", api.ErrNotFound, nameOrID)
}

// Peers implements api.Backend: configured peers and connected members.
func (n *Node) Peers(_ context.Context) ([]api.PeerInfo, error) {
	n.mu.Lock()
	conf := slices.Clone(n.cfg.Peers)
	errs := make(map[string]string, len(n.peerErr))
	for k, v := range n.peerErr {
		errs[k] = v
	}
	n.mu.Unlock()
	connected := map[peer.ID]*membership.Cert{}
	for _, p := range n.host.Peers() {
		connected[p.ID] = p.Cert
	}
	var out []api.PeerInfo
	for _, p := range conf {
		info := api.PeerInfo{Name: p.Name, Addr: p.Addr, Error: errs[p.Name]}
		if ai, err := addrInfo(p.Addr); err == nil {
			info.PeerID = ai.ID.String()
			if c, ok := connected[ai.ID]; ok {
				fillCert(&info, c)
				delete(connected, ai.ID)
			}
		}
		out = append(out, info)
	}
	for id, c := range connected {
		info := api.PeerInfo{Name: c.Name, PeerID: id.String()}
		fillCert(&info, c)
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b api.PeerInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func fillCert(info *api.PeerInfo, c *membership.Cert) {
	info.Connected, info.Verified = true, true
	info.Org, info.Roles, info.Expires = c.Org, c.Roles, c.NotAfter
	info.Error = ""
}

// AddPeer implements api.Backend: it saves the peer in config.toml and
// dials it.
func (n *Node) AddPeer(ctx context.Context, req api.AddPeerRequest) (api.PeerInfo, error) {
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" {
		return api.PeerInfo{}, fmt.Errorf("%w: the peer needs a name", api.ErrInvalid)
	}
	ai, err := addrInfo(req.Addr)
	if err != nil {
		return api.PeerInfo{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	if ai.ID == n.id.ID() {
		return api.PeerInfo{}, fmt.Errorf("%w: %s is this node's own address", api.ErrInvalid, req.Addr)
	}
	n.mu.Lock()
	for _, p := range n.cfg.Peers {
		if p.Name == req.Name && p.Addr != req.Addr {
			n.mu.Unlock()
			return api.PeerInfo{}, fmt.Errorf("%w: a peer named %q exists with address %s", api.ErrConflict, p.Name, p.Addr)
		}
	}
	next := n.cfg
	next.Peers = append(slices.DeleteFunc(slices.Clone(n.cfg.Peers), func(p config.Peer) bool { return p.Name == req.Name }),
		config.Peer{Name: req.Name, Addr: req.Addr})
	if err := config.Save(n.dir, next); err != nil {
		n.mu.Unlock()
		return api.PeerInfo{}, err
	}
	n.cfg = next
	n.mu.Unlock()
	info := api.PeerInfo{Name: req.Name, PeerID: ai.ID.String(), Addr: req.Addr}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cert, err := n.host.Connect(cctx, *ai)
	if err != nil {
		info.Error = err.Error()
		n.setPeerErr(req.Name, err.Error())
		return info, nil
	}
	fillCert(&info, cert)
	return info, nil
}
