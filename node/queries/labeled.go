package queries

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"

	"xnode/node/audit"
	"xnode/node/membership"
	"xnode/node/store"
	"xnode/plugins"
	"xnode/protocol"
	"xnode/protocol/psi/ecdh"
	"xnode/protocol/psi/oprf"
)

// OPRFProtocol carries labeled-PSI sessions.
const OPRFProtocol = libp2pproto.ID(oprf.ProtocolID)

// DefaultEpochTTL is how long a responder keeps one OPRF key epoch for a
// dataset before it rotates (old encodings are then refused).
const DefaultEpochTTL = 30 * 24 * time.Hour

// maxDeltas is how many recent deltas a responder keeps for queriers whose
// cache is a little behind; older caches get the full encoding.
const maxDeltas = 8

// published is a responder's current encoding of one dataset's labels.
type published struct {
	epoch          *oprf.Epoch
	created        time.Time
	datasetVersion uint64
	enc            *oprf.Encoding
	mem            *oprf.MembershipSet
	deltas         []*oprf.Delta
	items          map[string]string // namespaced id → labels, for deltas
}

// oprfState holds the responder's encodings and the querier's caches in
// memory. Epoch keys live in the store, so a restart keeps commitments;
// encodings are rebuilt on the first session after one.
type oprfState struct {
	// mu guards the maps; a building encoding holds it (sessions of one
	// dataset wait for one build).
	mu    sync.Mutex
	lists map[string]*published // by dataset and label columns
	cache map[string]oprf.Set   // querier: by peer ID and dataset
}

func epochKey(dataset string) []byte { return []byte("epoch/" + dataset) }

// loadEpoch returns the dataset's current epoch from the store, making or
// rotating it when needed.
func (s *Service) loadEpoch(dataset string, expected int) (*oprf.Epoch, time.Time, error) {
	b, err := s.cfg.Store.Get(store.OPRF, epochKey(dataset))
	now := s.now()
	if err == nil && len(b) > 8 {
		nanos, _ := store.DecodeUint64(b[:8])
		created := time.Unix(0, int64(nanos)).UTC()
		ep, perr := oprf.UnmarshalEpoch(b[8:])
		if perr == nil && now.Sub(created) < s.epochTTL() {
			return ep, created, nil
		}
		if perr == nil {
			return s.newEpoch(dataset, ep.ID()+1, expected)
		}
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, time.Time{}, err
	}
	return s.newEpoch(dataset, 1, expected)
}

func (s *Service) epochTTL() time.Duration {
	if s.cfg.EpochTTL > 0 {
		return s.cfg.EpochTTL
	}
	return DefaultEpochTTL
}

func (s *Service) newEpoch(dataset string, id uint64, expected int) (*oprf.Epoch, time.Time, error) {
	ep, err := oprf.NewEpoch(rand.Reader, id, oprf.EpochConfig{ExpectedItems: max(expected*2, 1024)})
	if err != nil {
		return nil, time.Time{}, err
	}
	b, err := ep.MarshalBinary()
	if err != nil {
		return nil, time.Time{}, err
	}
	now := s.now()
	rec := append(store.EncodeUint64(uint64(now.UnixNano())), b...)
	if err := s.cfg.Store.Put(store.OPRF, epochKey(dataset), rec); err != nil {
		return nil, time.Time{}, err
	}
	c := ep.Commitment()
	s.auditf(audit.Kind("oprf-epoch"), "", audit.ActorLocal, map[string]any{
		"dataset": dataset, "epoch": c.Epoch, "public_key": hex.EncodeToString(c.PublicKey[:]),
	})
	return ep, now, nil
}

// publish returns the current encoding of the prepared items' labels,
// building it, or updating it by a delta when the dataset changed.
func (s *Service) publish(ctx context.Context, p participantRun) (*published, error) {
	s.oprf.mu.Lock()
	defer s.oprf.mu.Unlock()
	key := p.r.Dataset + "\x00" + fmt.Sprint(p.plan.ResponderColumns)
	cur := s.oprf.lists[key]
	if cur != nil && cur.datasetVersion == p.r.DatasetVersion && s.now().Sub(cur.created) < s.epochTTL() {
		return cur, nil
	}
	ep, created, err := s.loadEpoch(p.r.Dataset, len(p.items.pos))
	if err != nil {
		return nil, err
	}
	prefix := storeKey("published", key)
	meta := fmt.Sprintf("%d/%d", p.r.DatasetVersion, ep.ID())
	if cur == nil {
		// After a restart: the encoding of this very dataset version and
		// epoch may be in the store already.
		if set, m, ok, err := s.loadSet(prefix); err == nil && ok && string(m) == meta {
			if enc, isEnc := set.(*oprf.Encoding); isEnc && enc.Commitment() == ep.Commitment() {
				pub := &published{epoch: ep, created: created, datasetVersion: p.r.DatasetVersion, enc: enc, mem: enc.Membership()}
				s.oprf.lists[key] = pub
				return pub, nil
			}
		}
	}
	items, err := labeledItems(ctx, p.view, p.items)
	if err != nil {
		return nil, err
	}
	next := &published{epoch: ep, created: created, datasetVersion: p.r.DatasetVersion, items: items}
	if cur != nil && cur.items != nil && cur.epoch.Commitment() == ep.Commitment() {
		var ch oprf.Changes
		for k, v := range items {
			if old, ok := cur.items[k]; !ok || old != v {
				ch.Put = append(ch.Put, oprf.Item{Key: []byte(k), Labels: []byte(v)})
			}
		}
		for k := range cur.items {
			if _, ok := items[k]; !ok {
				ch.Remove = append(ch.Remove, []byte(k))
			}
		}
		enc, delta, err := ep.Update(cur.enc, ch)
		if err != nil {
			return nil, err
		}
		next.enc, next.deltas = enc, append(cur.deltas, delta)
		if len(next.deltas) > maxDeltas {
			next.deltas = next.deltas[len(next.deltas)-maxDeltas:]
		}
	} else {
		list := make([]oprf.Item, 0, len(items))
		for k, v := range items {
			list = append(list, oprf.Item{Key: []byte(k), Labels: []byte(v)})
		}
		start := time.Now()
		if next.enc, err = ep.Encode(list); err != nil {
			return nil, err
		}
		s.log.Info("encoded a risk list", "dataset", p.r.Dataset, "items", len(list), "epoch", ep.ID(), "took", time.Since(start))
	}
	next.mem = next.enc.Membership()
	s.oprf.lists[key] = next
	if err := s.saveSet(prefix, next.enc, []byte(meta)); err != nil {
		s.log.Warn("failed to keep the risk-list encoding", "dataset", p.r.Dataset, "err", err)
	}
	return next, nil
}

// labeledItems reads the prepared items' identifiers and labels.
func labeledItems(ctx context.Context, v View, items *itemSet) (map[string]string, error) {
	src, err := newSource(ctx, v, items)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(items.pos))
	buf := make([][]byte, 4096)
	i := 0
	for {
		n, err := src.Next(buf)
		for _, k := range buf[:n] {
			label := ""
			if items.labels != nil {
				label = items.labels[i]
			}
			out[string(k)] = label
			i++
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// serveLabeled runs the responder's side of labeled PSI, charging every
// evaluated identifier to the querier's daily evaluation budget.
func (s *Service) serveLabeled(ctx context.Context, p participantRun, c protocol.Conn) (ecdh.Result, error) {
	var res ecdh.Result
	list, err := s.publish(ctx, p)
	if err != nil {
		return res, err
	}
	count, err := proposedSetSize(p.r)
	if err != nil {
		return res, err
	}
	peerID := p.remote.PeerID.String()
	m, err := oprf.NewResponder(oprf.ResponderConfig{
		Epoch: list.epoch, Encoding: list.enc, Membership: list.mem, Deltas: list.deltas, QuerierCount: count,
		Budget: func(n int) error {
			if p.r.Decision == nil {
				return errors.New("no policy decision recorded")
			}
			return s.cfg.Limiter.Spend(peerID, *p.r.Decision, int64(n), s.now())
		},
	})
	if err != nil {
		return res, err
	}
	runErr := protocol.Run(ctx, m, c)
	out, rerr := m.Result()
	com := list.epoch.Commitment()
	s.auditf(audit.Kind("oprf-evaluations"), p.r.ID, peerID, map[string]any{
		"querier": p.remote.Name, "evaluated": out.Evaluated, "epoch": com.Epoch,
		"public_key": hex.EncodeToString(com.PublicKey[:]), "sync": fmt.Sprint(out.Sync), "error": errString(errors.Join(runErr, rerr)),
	})
	if runErr != nil {
		return res, runErr
	}
	if rerr != nil {
		return res, rerr
	}
	res.PeerSize = out.Evaluated
	return res, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// runLabeled checks the querier's identifiers against every peer's list.
func (s *Service) runLabeled(ctx context.Context, q querySession) (protocolOutput, error) {
	var out protocolOutput
	ids, err := readKeys(ctx, q.view, q.items)
	if err != nil {
		return out, err
	}
	for _, name := range q.r.Peers {
		peerID := q.r.PeerIDs[name]
		cacheKey := peerID + "\x00" + q.r.PeerDataset
		s.oprf.mu.Lock()
		cached := s.oprf.cache[cacheKey]
		s.oprf.mu.Unlock()
		if cached == nil {
			if set, _, ok, err := s.loadSet(storeKey("cache", cacheKey)); err != nil {
				s.log.Warn("ignoring an unreadable cached encoding", "peer", name, "err", err)
			} else if ok {
				cached = set
			}
		}
		sctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		conn, err := s.openSession(sctx, q.r.ID, peerID, OPRFProtocol, membership.RoleRiskList)
		if err != nil {
			serr := s.sessionEnded(sctx, name, "labeled-PSI")
			cancel()
			if serr != nil {
				return out, serr
			}
			return out, fmt.Errorf("peer %s: %v; check that it is running and serves risk lists", name, err)
		}
		m, err := oprf.NewQuerier(oprf.QuerierConfig{Cache: cached}, ids)
		if err != nil {
			cancel()
			_ = conn.Reset()
			return out, err
		}
		err = protocol.Run(sctx, m, conn)
		serr := s.sessionEnded(sctx, name, "labeled-PSI")
		cancel()
		if err != nil {
			_ = conn.Reset()
			if errors.Is(err, oprf.ErrRefusedBudget) {
				return out, fmt.Errorf("peer %s refused: this node's daily evaluation budget there is used up", name)
			}
			if serr != nil {
				return out, serr
			}
			return out, fmt.Errorf("peer %s: the labeled-PSI session broke off: %v; check the peer and submit the query again", name, err)
		}
		_ = conn.Close()
		res, err := m.Result()
		if err != nil {
			return out, err
		}
		s.oprf.mu.Lock()
		s.oprf.cache[cacheKey] = res.Set
		s.oprf.mu.Unlock()
		if res.Sync != oprf.SyncCurrent || cached == nil {
			if err := s.saveSet(storeKey("cache", cacheKey), res.Set, []byte(peerID)); err != nil {
				s.log.Warn("failed to keep the encoding for the next session", "peer", name, "err", err)
			}
		}
		com := res.Commitment
		s.auditf(audit.Kind("oprf-evaluations"), q.r.ID, peerID, map[string]any{
			"peer": name, "evaluated": res.Evaluated, "epoch": com.Epoch,
			"public_key": hex.EncodeToString(com.PublicKey[:]), "sync": fmt.Sprint(res.Sync),
		})
		pm := peerMatches{name: name, pos: make([]int64, len(res.Matches)), labels: make([]string, len(res.Matches))}
		for i, mt := range res.Matches {
			pm.pos[i] = q.items.pos[mt.Index]
			pm.labels[i] = string(mt.Labels)
		}
		out.matches = append(out.matches, pm)
		out.peers = append(out.peers, plugins.PeerOutput{Peer: name, Size: int64(res.Set.Len()), Cardinality: int64(len(res.Matches))})
	}
	return out, nil
}

// readKeys reads the identifiers of the prepared items into memory (the
// querier's side of an unbalanced PSI is the small one).
func readKeys(ctx context.Context, v View, items *itemSet) ([][]byte, error) {
	src, err := newSource(ctx, v, items)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(items.pos))
	buf := make([][]byte, 4096)
	for {
		n, err := src.Next(buf)
		for _, k := range buf[:n] {
			out = append(out, append([]byte(nil), k...))
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// storedChunk is the largest chunk of an encoding kept under one key.
const storedChunk = 1 << 20

func storeKey(kind, name string) string {
	h := sha256.Sum256([]byte(name))
	return kind + "/" + hex.EncodeToString(h[:16]) + "/"
}

// saveSet keeps an encoding in the store under prefix, replacing what was
// there, so a restarted node neither refetches (querier) nor re-evaluates
// (responder) an unchanged list.
func (s *Service) saveSet(prefix string, set oprf.Set, meta []byte) error {
	chunks, err := set.Chunks(storedChunk)
	if err != nil {
		return err
	}
	return s.cfg.Store.Update(func(tx *store.Tx) error {
		var old [][]byte
		if err := tx.ForEachPrefix(store.OPRF, []byte(prefix), func(k, _ []byte) error {
			old = append(old, append([]byte(nil), k...))
			return nil
		}); err != nil {
			return err
		}
		for _, k := range old {
			if err := tx.Delete(store.OPRF, k); err != nil {
				return err
			}
		}
		if err := tx.Put(store.OPRF, []byte(prefix+"meta"), meta); err != nil {
			return err
		}
		for i, c := range chunks {
			if err := tx.Put(store.OPRF, append([]byte(prefix+"chunk/"), store.EncodeUint64(uint64(i))...), c); err != nil {
				return err
			}
		}
		return nil
	})
}

// loadSet reads what saveSet kept; ok is false if nothing is stored.
func (s *Service) loadSet(prefix string) (set oprf.Set, meta []byte, ok bool, err error) {
	var chunks [][]byte
	err = s.cfg.Store.View(func(tx *store.Tx) error {
		if m, err := tx.Get(store.OPRF, []byte(prefix+"meta")); err == nil {
			meta = m
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return tx.ForEachPrefix(store.OPRF, []byte(prefix+"chunk/"), func(_, v []byte) error {
			chunks = append(chunks, append([]byte(nil), v...))
			return nil
		})
	})
	if err != nil || len(chunks) == 0 || meta == nil {
		return nil, nil, false, err
	}
	set, err = oprf.DecodeSet(chunks, oprf.DefaultMaxItems)
	if err != nil {
		return nil, nil, false, err
	}
	return set, meta, true, nil
}
