// Package queries runs joint queries: it keeps their records in the store,
// drives the querier's side of each protocol session over a libp2p stream to
// every peer, and answers the sessions that peers open.
//
// A session on a protocol stream (/xnode/psi-ecdh/1.0.0) starts with two
// node-level frames, then the protocol's own:
//
//	querier                                  responder
//	  Proposal{query id, kind, mode, suite, dataset} ──▶ checks kind, suite, dataset
//	                                ◀── Decision{accept | code}
//	  ECDH-PSI messages (package protocol/psi/ecdh) ◀──▶
//
// The session id both parties feed into the protocol is
// SHA-256("xnode-session-v1" ‖ query id ‖ querier peer ID ‖ responder peer ID),
// so a session is bound to one query and one pair of nodes.
//
// Built-in kinds: overlap (ECDH-PSI cardinality: the querier learns how many
// clients it shares with each peer) and match (ECDH-PSI intersection: the
// querier learns which of its clients each peer also serves). Responders
// learn the querier's set size and nothing else.
package queries

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"xnode/crypto"
	"xnode/node/api"
	"xnode/node/membership"
	"xnode/node/p2p"
	"xnode/node/queries/pb"
	"xnode/node/store"
	"xnode/protocol"
	"xnode/protocol/psi/ecdh"
)

// PSIProtocol is the stream protocol of ECDH-PSI sessions.
const PSIProtocol = libp2pproto.ID(ecdh.ProtocolID)

// maxControlFrame caps the Proposal and Decision frames.
const maxControlFrame = 16 << 10

// Decision codes.
const (
	CodeUnknownDataset = "unknown_dataset"
	CodeUnsupported    = "unsupported"
	CodeRefused        = "refused"
	CodeBusy           = "busy"
)

// View is one version of a dataset opened for a query.
type View interface {
	Version() uint64
	Len() int
	// IDs returns a fresh reader over the namespaced identifiers, in the
	// order positions refer to.
	IDs() (ecdh.Source, error)
	// Display returns the normalised identifiers at positions, as the
	// analyst knows them.
	Display(positions []int) ([]string, error)
	Close() error
}

// Datasets opens datasets for queries.
type Datasets interface {
	// Open opens the latest version of name; an unknown name is an error
	// wrapping api.ErrNotFound.
	Open(ctx context.Context, name string) (View, error)
}

// Network is the part of the p2p node queries use.
type Network interface {
	Open(ctx context.Context, p peer.ID, id libp2pproto.ID, requiredRole string) (p2p.StreamConn, error)
	Handle(id libp2pproto.ID, requiredRole string, h p2p.Handler)
	ID() peer.ID
}

// Peers resolves the names analysts use to consortium members.
type Peers interface {
	// Resolve returns the peer ID and display name of a peer given by name
	// or peer ID, connecting to it if needed.
	Resolve(ctx context.Context, nameOrID string) (peer.ID, string, error)
}

// Config assembles a Service.
type Config struct {
	Store    *store.Store
	Datasets Datasets
	Network  Network
	Peers    Peers
	Logger   *slog.Logger
	// Name is this node's display name, sent in proposals.
	Name string
	// Suite is the default ECDH-PSI suite.
	Suite string
	// Timeout bounds one protocol session with one peer.
	Timeout time.Duration
}

// Service runs queries. Close stops running ones.
type Service struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the fields below.
	mu      sync.Mutex
	running map[string]*session // by query id, querier and responder sides
	closed  bool
}

// session is a running protocol session whose progress Get reports.
type session struct {
	peer  string
	stats func() ecdh.Stats
}

// New starts the service and registers the responder's stream handler.
// Queries a previous run left unfinished are marked failed.
func New(cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Suite == "" {
		cfg.Suite = crypto.DefaultSuite
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel, running: map[string]*session{}}
	if err := s.failInterrupted(); err != nil {
		cancel()
		return nil, err
	}
	cfg.Network.Handle(PSIProtocol, membership.RolePSI, s.respond)
	return s, nil
}

// Close cancels running queries and waits for them. Safe to call twice.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// failInterrupted marks queries left pending or running by a crash.
func (s *Service) failInterrupted() error {
	var stale []api.Query
	err := s.cfg.Store.ForEach(store.Queries, func(_, v []byte) error {
		var q api.Query
		if err := json.Unmarshal(v, &q); err != nil {
			return nil // unreadable records are reported by Get
		}
		if q.Status == api.StatusPending || q.Status == api.StatusRunning {
			stale = append(stale, q)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to read queries: %w", err)
	}
	for _, q := range stale {
		q.Status = api.StatusFailed
		q.Error = "the node stopped while the query ran; submit it again"
		q.Finished = time.Now().UTC()
		if err := s.save(q); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) save(q api.Query) error {
	b, err := json.Marshal(q)
	if err != nil {
		return fmt.Errorf("failed to encode query %s: %w", q.ID, err)
	}
	if err := s.cfg.Store.Put(store.Queries, []byte(q.ID), b); err != nil {
		return fmt.Errorf("failed to save query %s: %w", q.ID, err)
	}
	return nil
}

func (s *Service) load(id string) (api.Query, error) {
	var q api.Query
	b, err := s.cfg.Store.Get(store.Queries, []byte(id))
	if errors.Is(err, store.ErrNotFound) {
		return q, fmt.Errorf("%w: no query %q on this node (see `xnode query list`)", api.ErrNotFound, id)
	}
	if err != nil {
		return q, fmt.Errorf("failed to read query %s: %w", id, err)
	}
	if err := json.Unmarshal(b, &q); err != nil {
		return q, fmt.Errorf("failed to decode query %s: %w", id, err)
	}
	return q, nil
}

// Get returns a query, with live progress while it runs.
func (s *Service) Get(_ context.Context, id string) (api.Query, error) {
	q, err := s.load(id)
	if err != nil {
		return q, err
	}
	s.mu.Lock()
	sess := s.running[id]
	s.mu.Unlock()
	if sess != nil && sess.stats != nil {
		st := sess.stats()
		q.Progress = &api.Progress{Peer: sess.peer, Phase: string(st.Phase), Done: st.Done, Total: st.Total}
	}
	return q, nil
}

// List returns every query record without result rows, newest first.
func (s *Service) List(_ context.Context) ([]api.Query, error) {
	var out []api.Query
	err := s.cfg.Store.ForEach(store.Queries, func(_, v []byte) error {
		var q api.Query
		if err := json.Unmarshal(v, &q); err != nil {
			return fmt.Errorf("failed to decode a query record: %w", err)
		}
		q.Result = nil
		out = append(out, q)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b api.Query) int { return b.Created.Compare(a.Created) })
	return out, nil
}

// kindMode maps a query kind to the ECDH-PSI mode it needs.
func kindMode(kind string) (ecdh.Mode, error) {
	switch kind {
	case api.KindOverlap:
		return ecdh.Cardinality, nil
	case api.KindMatch:
		return ecdh.Intersection, nil
	}
	return 0, fmt.Errorf("%w: unknown query kind %q (built-in kinds: %s, %s)", api.ErrInvalid, kind, api.KindOverlap, api.KindMatch)
}

func revealed(kind string) string {
	if kind == api.KindMatch {
		return "the querier learned which of its identifiers each peer also holds; each peer learned only the querier's set size"
	}
	return "the querier learned how many identifiers it shares with each peer; each peer learned only the querier's set size"
}

func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// sessionID binds a protocol session to the query and both nodes.
func sessionID(queryID string, querier, responder peer.ID) []byte {
	h := sha256.New()
	h.Write([]byte("xnode-session-v1"))
	for _, part := range []string{queryID, string(querier), string(responder)} {
		h.Write([]byte{byte(len(part) >> 8), byte(len(part))})
		h.Write([]byte(part))
	}
	return h.Sum(nil)
}

// Submit validates req, records the query and runs it in the background.
func (s *Service) Submit(ctx context.Context, req api.QueryRequest) (api.Query, error) {
	mode, err := kindMode(req.Kind)
	if err != nil {
		return api.Query{}, err
	}
	if req.Dataset == "" {
		return api.Query{}, fmt.Errorf("%w: name the dataset to query with --dataset", api.ErrInvalid)
	}
	if len(req.Peers) == 0 {
		return api.Query{}, fmt.Errorf("%w: name at least one peer with --peers (see `xnode peers list`)", api.ErrInvalid)
	}
	suiteName := req.Suite
	if suiteName == "" {
		suiteName = s.cfg.Suite
	}
	suite, err := crypto.Lookup(suiteName)
	if err != nil {
		return api.Query{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	peerDataset := req.PeerDataset
	if peerDataset == "" {
		peerDataset = req.Dataset
	}
	view, err := s.cfg.Datasets.Open(ctx, req.Dataset)
	if err != nil {
		return api.Query{}, err
	}
	type target struct {
		id   peer.ID
		name string
	}
	var targets []target
	seen := map[peer.ID]bool{}
	for _, p := range req.Peers {
		id, name, err := s.cfg.Peers.Resolve(ctx, strings.TrimSpace(p))
		if err != nil {
			view.Close()
			return api.Query{}, err
		}
		if id == s.cfg.Network.ID() {
			view.Close()
			return api.Query{}, fmt.Errorf("%w: %q is this node itself; name other members", api.ErrInvalid, p)
		}
		if seen[id] {
			view.Close()
			return api.Query{}, fmt.Errorf("%w: peer %q is named twice", api.ErrInvalid, p)
		}
		seen[id] = true
		targets = append(targets, target{id, name})
	}
	qid, err := newID()
	if err != nil {
		view.Close()
		return api.Query{}, err
	}
	q := api.Query{
		ID: qid, Kind: req.Kind, Role: "querier", Status: api.StatusRunning,
		Dataset: req.Dataset, DatasetVersion: view.Version(), PeerDataset: peerDataset,
		Suite: suite.Name(), Created: time.Now().UTC(),
		Summary: api.QuerySummary{OwnSize: view.Len(), Revealed: revealed(req.Kind)},
	}
	for _, t := range targets {
		q.Peers = append(q.Peers, t.name)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		view.Close()
		return api.Query{}, fmt.Errorf("%w: the node is shutting down", api.ErrUnavailable)
	}
	s.running[qid] = &session{}
	s.wg.Add(1)
	s.mu.Unlock()
	if err := s.save(q); err != nil {
		s.finishRunning(qid)
		s.wg.Done()
		view.Close()
		return api.Query{}, err
	}
	go func() {
		defer s.wg.Done()
		defer s.finishRunning(qid)
		defer view.Close()
		final := q
		err := func() error {
			for _, t := range targets {
				res, err := s.ask(t.id, t.name, q, peerDataset, mode, suite, view)
				if err != nil {
					return err
				}
				if err := s.addResult(&final, t.name, res, view); err != nil {
					return err
				}
			}
			return nil
		}()
		final.Finished = time.Now().UTC()
		if err != nil {
			final.Status, final.Error, final.Result = api.StatusFailed, err.Error(), nil
			s.log.Info("query failed", "query", qid, "kind", q.Kind, "err", err)
		} else {
			final.Status = api.StatusDone
			s.log.Info("query done", "query", qid, "kind", q.Kind, "intersection_size", final.Summary.IntersectionSize)
		}
		if err := s.save(final); err != nil {
			s.log.Error("failed to save query result", "query", qid, "err", err)
		}
	}()
	return q, nil
}

func (s *Service) finishRunning(id string) {
	s.mu.Lock()
	delete(s.running, id)
	s.mu.Unlock()
}

// addResult folds one peer's protocol result into the query record.
func (s *Service) addResult(q *api.Query, peerName string, res ecdh.Result, view View) error {
	if q.Summary.PerPeer == nil {
		q.Summary.PerPeer, q.Summary.PeerSizes = map[string]int{}, map[string]int{}
	}
	q.Summary.PerPeer[peerName] = res.Cardinality
	q.Summary.PeerSizes[peerName] = res.PeerSize
	q.Summary.IntersectionSize += res.Cardinality
	if q.Kind != api.KindMatch {
		return nil
	}
	ids, err := view.Display(res.Matches)
	if err != nil {
		return fmt.Errorf("failed to read matched identifiers: %w", err)
	}
	if q.Result == nil {
		q.Result = &api.ResultTable{Columns: []string{"id", "peer"}, Rows: [][]string{}}
	}
	for _, id := range ids {
		q.Result.Rows = append(q.Result.Rows, []string{id, peerName})
	}
	return nil
}

// ask runs the querier's side of one session with one peer.
func (s *Service) ask(p peer.ID, name string, q api.Query, dataset string, mode ecdh.Mode, suite crypto.Suite, view View) (ecdh.Result, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	fail := func(format string, args ...any) (ecdh.Result, error) {
		return ecdh.Result{}, fmt.Errorf("peer %s: "+format, append([]any{name}, args...)...)
	}
	conn, err := s.cfg.Network.Open(ctx, p, PSIProtocol, membership.RolePSI)
	if err != nil {
		return fail("failed to open a PSI session: %v; check that the peer is running and connected (`xnode peers list`)", err)
	}
	defer conn.Reset() // after Close this is a no-op
	prop, err := proto.Marshal(&pb.Proposal{
		QueryId: q.ID, Kind: q.Kind, Mode: mode.String(), Suite: suite.Name(), Dataset: dataset, QuerierName: s.cfg.Name,
	})
	if err != nil {
		return ecdh.Result{}, err
	}
	if err := conn.Send(ctx, prop); err != nil {
		return fail("failed to send the proposal: %v", err)
	}
	msg, err := conn.Recv(ctx)
	if err != nil {
		return fail("no answer to the proposal: %v", err)
	}
	var dec pb.Decision
	if len(msg) > maxControlFrame || proto.Unmarshal(msg, &dec) != nil {
		return fail("malformed answer to the proposal")
	}
	if !dec.Accept {
		return fail("%s", refusal(dec.Code, dataset))
	}
	ids, err := view.IDs()
	if err != nil {
		return ecdh.Result{}, err
	}
	m, err := ecdh.NewQuerier(ecdh.Config{Suite: suite, Mode: mode, Session: sessionID(q.ID, s.cfg.Network.ID(), p)}, ids)
	if err != nil {
		return ecdh.Result{}, err
	}
	s.track(q.ID, name, m.Stats)
	if err := protocol.Run(ctx, m, conn); err != nil {
		if ctx.Err() != nil && s.ctx.Err() == nil {
			return fail("the session did not finish within %v: %v", s.cfg.Timeout, err)
		}
		return fail("the PSI session broke off: %v; check the peer and submit the query again", err)
	}
	if err := conn.Close(); err != nil {
		s.log.Debug("closing PSI stream", "peer", name, "err", err)
	}
	return m.Result()
}

func (s *Service) track(id, peerName string, stats func() ecdh.Stats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.running[id]; ok {
		sess.peer, sess.stats = peerName, stats
	}
}

func refusal(code, dataset string) string {
	switch code {
	case CodeUnknownDataset:
		return fmt.Sprintf("it has no dataset %q; ask its operator, or name another with --peer-dataset", dataset)
	case CodeUnsupported:
		return "it does not support this kind of query or suite; check that both nodes run the same xnode version"
	case CodeBusy:
		return "it is busy; submit the query again later"
	}
	return "it refused the query; ask its operator to check its policy"
}

// respond answers a session a peer opened.
func (s *Service) respond(ctx context.Context, remote *membership.Cert, c protocol.Conn) error {
	msg, err := c.Recv(ctx)
	if err != nil {
		return fmt.Errorf("failed to read a proposal: %w", err)
	}
	var prop pb.Proposal
	if len(msg) > maxControlFrame || proto.Unmarshal(msg, &prop) != nil {
		return errors.New("malformed proposal")
	}
	// decline answers with a code and ends the stream in good order, so the
	// querier reads the decision before the stream closes.
	decline := func(code string, why error) error {
		s.log.Info("declined a query", "query", prop.QueryId, "peer", remote.Name, "code", code, "why", why)
		b, err := proto.Marshal(&pb.Decision{Code: code})
		if err != nil {
			return err
		}
		return c.Send(ctx, b)
	}
	if len(prop.QueryId) != 32 {
		return decline(CodeUnsupported, errors.New("bad query id"))
	}
	if _, err := hex.DecodeString(prop.QueryId); err != nil {
		return decline(CodeUnsupported, errors.New("bad query id"))
	}
	mode, err := kindMode(prop.Kind)
	if err != nil || mode.String() != prop.Mode {
		return decline(CodeUnsupported, fmt.Errorf("kind %q with mode %q", prop.Kind, prop.Mode))
	}
	suite, err := crypto.Lookup(prop.Suite)
	if err != nil || prop.Suite == "" {
		return decline(CodeUnsupported, fmt.Errorf("suite %q", prop.Suite))
	}
	view, err := s.cfg.Datasets.Open(ctx, prop.Dataset)
	if errors.Is(err, api.ErrNotFound) {
		return decline(CodeUnknownDataset, err)
	}
	if err != nil {
		return decline(CodeBusy, err)
	}
	defer view.Close()
	rec := api.Query{
		ID: prop.QueryId, Kind: prop.Kind, Role: "responder", Status: api.StatusRunning,
		Dataset: prop.Dataset, DatasetVersion: view.Version(), Peers: []string{remote.Name},
		Suite: suite.Name(), Created: time.Now().UTC(),
		Summary: api.QuerySummary{OwnSize: view.Len(), Revealed: revealed(prop.Kind)},
	}
	if existing, err := s.load(prop.QueryId); err == nil && existing.Role == "responder" {
		return decline(CodeRefused, errors.New("query id replayed"))
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return decline(CodeBusy, errors.New("shutting down"))
	}
	s.running[rec.ID] = &session{}
	s.mu.Unlock()
	defer s.finishRunning(rec.ID)
	if err := s.save(rec); err != nil {
		return decline(CodeBusy, err)
	}
	ok, _ := proto.Marshal(&pb.Decision{Accept: true})
	runErr := func() error {
		if err := c.Send(ctx, ok); err != nil {
			return err
		}
		ids, err := view.IDs()
		if err != nil {
			return err
		}
		m, err := ecdh.NewResponder(ecdh.Config{Suite: suite, Mode: mode, Session: sessionID(rec.ID, remote.PeerID, s.cfg.Network.ID())}, ids)
		if err != nil {
			return err
		}
		s.track(rec.ID, remote.Name, m.Stats)
		if err := protocol.Run(ctx, m, c); err != nil {
			return err
		}
		res, err := m.Result()
		if err != nil {
			return err
		}
		rec.Summary.PeerSizes = map[string]int{remote.Name: res.PeerSize}
		return nil
	}()
	rec.Finished = time.Now().UTC()
	if runErr != nil {
		rec.Status, rec.Error = api.StatusFailed, fmt.Sprintf("the session with %s broke off: %v", remote.Name, runErr)
	} else {
		rec.Status = api.StatusDone
	}
	if err := s.save(rec); err != nil {
		s.log.Error("failed to save responder record", "query", rec.ID, "err", err)
	}
	return runErr
}
