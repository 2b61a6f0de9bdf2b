package queries

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"xnode/node/identity"
	"xnode/node/membership"
	"xnode/node/p2p"
	"xnode/plugins"
	"xnode/protocol"
	"xnode/protocol/psi/ecdh"
	"xnode/protocol/secagg"
)

// MinSumParties is the fewest parties (the querier included) a secure sum
// runs with, and the fewest whose sum it may reveal: the querier is one of
// them, so a sum over two would reveal the other party's input.
const MinSumParties = 3

// roundTimeout bounds each secure-aggregation round; a participant that
// has not answered by then is dropped and the others go on.
const roundTimeout = 30 * time.Second

// sumThreshold is the fewest of n parties that must stay to the end of a
// secure sum, and so the fewest whose sum it reveals: a strict majority
// (the protocol's consistency round needs one) and at least MinSumParties.
// Without the second bound a 3-party sum that lost one party would reveal
// the sum of the querier and one peer, and so that peer's input. A sum of n
// parties tolerates n − sumThreshold(n) dropouts: none of 3, one of 4, two
// of 5.
func sumThreshold(n int) int {
	return max(n/2+1, MinSumParties)
}

// sumConfig is the secure-aggregation configuration every party derives
// from the signed proposal: the roster sorted by peer ID, the threshold
// sumThreshold, and a session id bound to the query. Each participant's
// client enforces the threshold itself: it sends no masked input and no
// unmasking share once fewer remain.
func sumConfig(queryID string, roster []string, vectorLen int) secagg.Config {
	ids := make([]secagg.ClientID, 0, len(roster))
	for _, r := range roster {
		ids = append(ids, secagg.ClientID(r))
	}
	slices.Sort(ids)
	sess := sha256.Sum256([]byte("xnode-secagg-v1:" + queryID))
	return secagg.Config{
		Session: sess[:], Clients: ids, Threshold: sumThreshold(len(ids)), VectorLen: vectorLen,
		Verify: verifyPeerSig,
	}
}

// tooFewStayed is the error a querier reports when a secure sum aborted
// because fewer than its threshold of parties stayed.
func tooFewStayed(cfg secagg.Config) error {
	return fmt.Errorf("too few participants stayed to the end of the secure sum: it needs at least %d of its %d parties "+
		"(the querier included) to stay, so nothing was revealed. "+
		"Check that the peers are running and reachable (`xnode peers list`), then submit the query again",
		cfg.Threshold, len(cfg.Clients))
}

// verifyPeerSig checks a participant's signature against the key its
// peer ID embeds.
func verifyPeerSig(id secagg.ClientID, msg, sig []byte) bool {
	p, err := peer.Decode(string(id))
	return err == nil && identity.Verify(p, msg, sig)
}

func (s *Service) signer() secagg.Signer {
	return secagg.SignerFunc(func(msg []byte) ([]byte, error) { return s.cfg.Identity.Sign(msg), nil })
}

// vector returns a side's contribution: the sum of its items' vectors.
func vector(items *itemSet, n int) ([]uint64, error) {
	if items.sum == nil {
		return make([]uint64, n), nil
	}
	if len(items.sum) != n {
		return nil, fmt.Errorf("the plugin's vectors have %d values, its plan says %d", len(items.sum), n)
	}
	return items.sum, nil
}

// event is a message from one participant's stream, or its end.
type event struct {
	from secagg.ClientID
	msg  []byte
	err  error
}

// runSum aggregates over the querier (a local client) and every peer; it
// fails, revealing nothing, if fewer than the threshold stay to the end.
func (s *Service) runSum(ctx context.Context, q querySession) (protocolOutput, error) {
	var out protocolOutput
	self := secagg.ClientID(s.cfg.Network.ID().String())
	roster := []string{string(self)}
	for _, name := range q.r.Peers {
		roster = append(roster, q.r.PeerIDs[name])
	}
	if len(roster) < MinSumParties {
		return out, fmt.Errorf("a secure sum needs at least %d parties (the querier included), this query has %d", MinSumParties, len(roster))
	}
	cfg := sumConfig(q.r.ID, roster, q.plan.VectorLen)
	out, err := s.aggregate(ctx, q, cfg, self)
	if errors.Is(err, secagg.ErrTooFewSurvivors) {
		// Whichever round it happened in, the server aborted before it
		// could unmask anything.
		return out, tooFewStayed(cfg)
	}
	return out, err
}

// aggregate runs the server and the querier's own client of one secure sum
// and routes the messages of the other participants over their streams.
func (s *Service) aggregate(ctx context.Context, q querySession, cfg secagg.Config, self secagg.ClientID) (protocolOutput, error) {
	var out protocolOutput
	input, err := vector(q.items, q.plan.VectorLen)
	if err != nil {
		return out, err
	}
	server, err := secagg.NewServer(secagg.ServerConfig{Config: cfg})
	if err != nil {
		return out, err
	}
	local, err := secagg.NewClient(secagg.ClientConfig{Config: cfg, Self: self, Signer: s.signer()}, input)
	if err != nil {
		return out, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	events := make(chan event, 64)
	conns := map[secagg.ClientID]p2p.StreamConn{}
	dead := map[secagg.ClientID]bool{}
	names := map[secagg.ClientID]string{}
	var (
		closers []func()
		readers sync.WaitGroup
	)
	// Every stream's reader ends before runSum returns.
	defer func() {
		cancel()
		for _, c := range closers {
			c()
		}
		readers.Wait()
	}()
	var pending []secagg.Outgoing
	for _, name := range q.r.Peers {
		id := secagg.ClientID(q.r.PeerIDs[name])
		names[id] = name
		conn, err := s.openSession(ctx, q.r.ID, q.r.PeerIDs[name], SecAggProtocol, membership.RoleSecAgg)
		if err != nil {
			s.log.Info("participant unavailable for the secure sum", "query", q.r.ID, "peer", name, "err", err)
			dead[id] = true
			more, derr := server.Drop(id)
			if derr != nil {
				return out, derr
			}
			pending = append(pending, more...)
			continue
		}
		conns[id] = conn
		closers = append(closers, func() { _ = conn.Reset() })
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				msg, err := conn.Recv(ctx)
				select {
				case events <- event{from: id, msg: msg, err: err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	first, err := local.Start()
	if err != nil {
		return out, err
	}
	more, err := server.Deliver(self, first)
	if err != nil {
		return out, err
	}
	pending = append(pending, more...)
	round := server.Round()
	deadline := time.NewTimer(roundTimeout)
	defer deadline.Stop()
	for {
		// Route what the server sends: to the local client in process,
		// to the others over their streams.
		for len(pending) > 0 {
			o := pending[0]
			pending = pending[1:]
			if o.To == self {
				replies, err := local.Deliver(o.Msg)
				if err != nil {
					return out, fmt.Errorf("the querier's own contribution failed: %w", err)
				}
				for _, r := range replies {
					more, err := server.Deliver(self, r)
					if err != nil {
						return out, err
					}
					pending = append(pending, more...)
				}
				continue
			}
			conn, ok := conns[o.To]
			if !ok {
				continue
			}
			if err := conn.Send(ctx, o.Msg); err != nil {
				delete(conns, o.To)
				more, _ := server.Drop(o.To)
				pending = append(pending, more...)
			}
		}
		if server.Done() {
			break
		}
		if r := server.Round(); r != round {
			round = r
			deadline.Reset(roundTimeout)
			// Clients whose streams ended earlier cannot answer this round.
			for _, id := range server.Waiting() {
				if dead[id] {
					more, err := server.Drop(id)
					if err != nil {
						return out, err
					}
					pending = append(pending, more...)
				}
			}
			if len(pending) > 0 {
				continue
			}
		}
		select {
		case ev := <-events:
			if _, live := conns[ev.from]; !live {
				continue
			}
			var more []secagg.Outgoing
			if ev.err != nil {
				// A stream that ends is dropped only when the server waits
				// for it: a client that has sent its last message closes
				// its stream normally, and its answers must stand.
				delete(conns, ev.from)
				dead[ev.from] = true
				if slices.Contains(server.Waiting(), ev.from) {
					s.log.Info("participant left the secure sum", "query", q.r.ID, "peer", names[ev.from], "round", server.Round(), "err", ev.err)
					more, err = server.Drop(ev.from)
				}
			} else {
				more, err = server.Deliver(ev.from, ev.msg)
				if err != nil {
					// Deliver dropped the sender; Drop ends the round if it
					// was the last one the server waited for.
					s.log.Info("participant sent a bad message; dropped", "query", q.r.ID, "peer", names[ev.from], "err", err)
					_ = conns[ev.from].Reset()
					delete(conns, ev.from)
					dead[ev.from] = true
					more, err = server.Drop(ev.from)
				}
			}
			if err != nil {
				return out, err
			}
			pending = append(pending, more...)
		case <-deadline.C:
			more, err := server.EndRound()
			if err != nil {
				return out, err
			}
			pending = append(pending, more...)
			deadline.Reset(roundTimeout)
		case <-ctx.Done():
			if s.ctx.Err() != nil {
				return out, errors.New("the secure sum stopped because this node is shutting down; submit the query again once it runs")
			}
			var waiting []string
			for _, id := range server.Waiting() {
				if id != self {
					waiting = append(waiting, names[id])
				}
			}
			who := "the participants"
			if len(waiting) > 0 {
				who = strings.Join(waiting, ", ")
			}
			return out, fmt.Errorf("the secure sum hit its deadline: it did not finish within %v (psi.timeout_seconds) while waiting for %s in round %v; "+
				"a participant is slow or the link to it is congested. Check the participants and the links, "+
				"or raise psi.timeout_seconds in config.toml, then submit the query again", s.cfg.Timeout, who, server.Round())
		}
	}
	sum, survivors, err := server.Result()
	if err != nil {
		return out, err
	}
	for _, c := range conns {
		_ = c.Close()
	}
	out.aggregate = secagg.Signed(sum)
	out.contributors = len(survivors)
	for _, id := range survivors {
		if id == self {
			continue
		}
		out.peers = append(out.peers, plugins.PeerOutput{Peer: names[id]})
	}
	return out, nil
}

// serveSum runs a participant's side of a secure sum: one client whose
// input is the sum of its items' vectors.
func (s *Service) serveSum(ctx context.Context, p participantRun, c protocol.Conn) (ecdh.Result, error) {
	var res ecdh.Result
	if len(p.r.Roster) < MinSumParties {
		return res, fmt.Errorf("a secure sum needs at least %d parties", MinSumParties)
	}
	cfg := sumConfig(p.r.ID, p.r.Roster, p.plan.VectorLen)
	input, err := vector(p.items, p.plan.VectorLen)
	if err != nil {
		return res, err
	}
	client, err := secagg.NewClient(secagg.ClientConfig{Config: cfg, Self: secagg.ClientID(s.cfg.Network.ID().String()), Signer: s.signer()}, input)
	if err != nil {
		return res, err
	}
	first, err := client.Start()
	if err != nil {
		return res, err
	}
	if err := c.Send(ctx, first); err != nil {
		return res, err
	}
	for !client.Done() {
		msg, err := c.Recv(ctx)
		if err != nil {
			return res, err
		}
		replies, err := client.Deliver(msg)
		if err != nil {
			return res, err
		}
		for _, r := range replies {
			if err := c.Send(ctx, r); err != nil {
				return res, err
			}
		}
	}
	return res, client.Err()
}
