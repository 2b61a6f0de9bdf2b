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
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"

	"xnode/crypto"
	"xnode/node/api"
	"xnode/node/audit"
	"xnode/node/identity"
	"xnode/node/membership"
	"xnode/node/p2p"
	"xnode/node/policy"
	"xnode/node/registry"
	"xnode/node/store"
	"xnode/plugins"
	"xnode/protocol/psi/ecdh"
	"xnode/protocol/psi/oprf"
	"xnode/protocol/secagg"
)

// Stream protocols.
const (
	// ControlProtocol carries proposals and approval notices.
	ControlProtocol = libp2pproto.ID("/xnode/query/1.0.0")
	// PSIProtocol carries ECDH-PSI sessions.
	PSIProtocol = libp2pproto.ID(ecdh.ProtocolID)
	// SecAggProtocol carries secure-aggregation sessions.
	SecAggProtocol = libp2pproto.ID(secagg.ProtocolID)
)

// maxControlFrame caps proposals, notices, answers and run requests.
const maxControlFrame = 64 << 10

// DefaultProposalTTL is how long a proposal waits for approvals.
const DefaultProposalTTL = 24 * time.Hour

// Statuses of a participant's record besides the api ones.
const (
	statusOK      = "ok"
	statusRefused = "refused"
)

// Roles of a record.
const (
	roleQuerier   = "querier"
	roleResponder = "responder"
)

// View is one version of a dataset opened for a query. Row i has position i.
type View interface {
	Version() uint64
	Len() int
	// Columns describes every value and label column.
	Columns() []plugins.Column
	// Rows streams rows in position order with the named columns.
	Rows(ctx context.Context, columns []string) (plugins.RowReader, error)
	// Keys streams the namespaced identifiers in position order.
	Keys(ctx context.Context) (KeyReader, error)
	// Row returns the row at pos with the named columns.
	Row(ctx context.Context, pos int64, columns []string) (plugins.Row, error)
	Close() error
}

// KeyReader reads identifiers in position order: Next fills dst and returns
// how many, then 0, io.EOF at the end. dst's slices may be reused.
type KeyReader interface {
	Next(dst [][]byte) (int, error)
}

// Datasets opens datasets for queries.
type Datasets interface {
	// Open opens a version of name (0: the latest); an unknown name is an
	// error wrapping api.ErrNotFound.
	Open(ctx context.Context, name string, version uint64) (View, error)
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

// Policy decides what peers may run here.
type Policy interface {
	Evaluate(req policy.Request) policy.Decision
}

// Config assembles a Service.
type Config struct {
	Store    *store.Store
	Datasets Datasets
	Network  Network
	Peers    Peers
	Identity *identity.Identity
	Registry *registry.Registry
	Policy   Policy
	Limiter  *policy.Limiter
	Audit    *audit.Log
	Logger   *slog.Logger
	// Name is this node's display name, sent in proposals.
	Name string
	// Suite is the default ECDH-PSI suite.
	Suite string
	// Timeout bounds one protocol session with one peer.
	Timeout time.Duration
	// ProposalTTL is how long a proposal waits for approvals.
	ProposalTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// EpochTTL is how long a labeled-PSI key epoch lasts (default
	// DefaultEpochTTL).
	EpochTTL time.Duration
}

// Service runs queries. Close stops running ones.
type Service struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// recMu serialises read-modify-write of query records.
	recMu sync.Mutex

	oprf oprfState

	// mu guards the fields below.
	mu      sync.Mutex
	running map[string]*session // by query id
	closed  bool
}

// session is a running protocol session whose progress Get reports.
type session struct {
	peer  string
	stats func() ecdh.Stats
}

// record is a query as the store keeps it: the api view plus what only
// this node needs.
type record struct {
	api.Query
	// Proposal is the signed proposal (querier: as sent; responder: as
	// received), kept so a run can be checked against it.
	Proposal []byte `json:"proposal,omitempty"`
	// PeerIDs are the participants' peer IDs by name (querier).
	PeerIDs map[string]string `json:"peer_ids,omitempty"`
	// QuerierID is the querier's peer ID (responder).
	QuerierID string `json:"querier_id,omitempty"`
	// Roster is every party's peer ID, the querier's first (responder).
	Roster []string `json:"roster,omitempty"`
	// Decision is the policy decision that let it run here (responder).
	Decision *policy.Decision `json:"decision,omitempty"`
	// Salt keys the audit commitment to the result (querier).
	Salt []byte `json:"salt,omitempty"`
}

// New starts the service and registers its stream handlers. Queries a
// previous run left running are marked failed.
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
	if cfg.ProposalTTL <= 0 {
		cfg.ProposalTTL = DefaultProposalTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for what, v := range map[string]any{"Store": cfg.Store, "Datasets": cfg.Datasets, "Network": cfg.Network, "Peers": cfg.Peers,
		"Identity": cfg.Identity, "Registry": cfg.Registry, "Policy": cfg.Policy, "Limiter": cfg.Limiter, "Audit": cfg.Audit} {
		if v == nil {
			return nil, fmt.Errorf("queries: Config.%s is missing", what)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel, running: map[string]*session{},
		oprf: oprfState{lists: map[string]*published{}, cache: map[string]oprf.Set{}}}
	if err := s.failInterrupted(); err != nil {
		cancel()
		return nil, err
	}
	cfg.Network.Handle(ControlProtocol, "", s.handleControl)
	cfg.Network.Handle(PSIProtocol, membership.RolePSI, s.handleRun)
	cfg.Network.Handle(SecAggProtocol, membership.RoleSecAgg, s.handleRun)
	cfg.Network.Handle(OPRFProtocol, membership.RoleRiskCheck, s.handleRun)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.expireLoop() }()
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

// goOwned runs f in a goroutine the service waits for; false if closing.
func (s *Service) goOwned(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f() }()
	return true
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// errStopped is a query's error when this node stopped while it ran: a
// graceful shutdown at the querier, or a crash or shutdown either side
// found at the next start. It blames no peer.
var errStopped = errors.New("this node stopped (shut down or restarted) while the query ran; submit it again")

// failInterrupted marks records a previous run left running (a crash, or a
// shutdown before they ended) as failed with errStopped, and audits each.
func (s *Service) failInterrupted() error {
	var stale []record
	err := s.cfg.Store.ForEach(store.Queries, func(_, v []byte) error {
		var r record
		if json.Unmarshal(v, &r) != nil {
			return nil
		}
		if r.Status == api.StatusRunning || r.Status == api.StatusPending || r.Status == api.StatusProposed {
			stale = append(stale, r)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to read queries: %w", err)
	}
	for _, r := range stale {
		was := r.Status
		r.Status = api.StatusFailed
		r.Error = errStopped.Error()
		r.Finished = s.now()
		if err := s.save(r); err != nil {
			return err
		}
		s.auditf(audit.KindFailure, r.ID, audit.ActorLocal, map[string]any{"role": r.Role, "status": was, "error": r.Error})
	}
	return nil
}

func (s *Service) save(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("failed to encode query %s: %w", r.ID, err)
	}
	if err := s.cfg.Store.Put(store.Queries, []byte(r.ID), b); err != nil {
		return fmt.Errorf("failed to save query %s: %w", r.ID, err)
	}
	return nil
}

func (s *Service) load(id string) (record, error) {
	var r record
	b, err := s.cfg.Store.Get(store.Queries, []byte(id))
	if errors.Is(err, store.ErrNotFound) {
		return r, fmt.Errorf("%w: no query %q on this node (see `xnode query list`)", api.ErrNotFound, id)
	}
	if err != nil {
		return r, fmt.Errorf("failed to read query %s: %w", id, err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("failed to decode query %s: %w", id, err)
	}
	return r, nil
}

// update applies f to the stored record under recMu and saves it.
func (s *Service) update(id string, f func(r *record) error) (record, error) {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	r, err := s.load(id)
	if err != nil {
		return r, err
	}
	if err := f(&r); err != nil {
		return r, err
	}
	return r, s.save(r)
}

// Get returns a query, with live progress while it runs.
func (s *Service) Get(_ context.Context, id string) (api.Query, error) {
	r, err := s.load(id)
	if err != nil {
		return api.Query{}, err
	}
	q := r.Query
	s.mu.Lock()
	sess := s.running[id]
	s.mu.Unlock()
	if sess != nil && sess.stats != nil {
		st := sess.stats()
		q.Progress = &api.Progress{Peer: sess.peer, Phase: string(st.Phase), Done: st.Done, Total: st.Total}
	}
	return q, nil
}

// List returns every query without result rows, newest first.
func (s *Service) List(_ context.Context) ([]api.Query, error) {
	return s.list(func(record) bool { return true })
}

// Pending lists queries proposed to this node that wait for a person.
func (s *Service) Pending(_ context.Context) ([]api.Query, error) {
	now := s.now()
	return s.list(func(r record) bool {
		return r.Role == roleResponder && r.Status == api.StatusAwaitingApproval && now.Before(r.Expires)
	})
}

func (s *Service) list(keep func(record) bool) ([]api.Query, error) {
	out := []api.Query{}
	err := s.cfg.Store.ForEach(store.Queries, func(_, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("failed to decode a query record: %w", err)
		}
		if keep(r) {
			q := r.Query
			q.Result = nil
			out = append(out, q)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b api.Query) int { return b.Created.Compare(a.Created) })
	return out, nil
}

func (s *Service) track(id, peerName string, stats func() ecdh.Stats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running[id] = &session{peer: peerName, stats: stats}
}

func (s *Service) untrack(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, id)
}

// auditf appends an audit entry; a failure is logged, as the event
// happened whatever the log says. It appends while the service closes too
// (Close waits for it), so a query a shutdown stops is audited as failed.
func (s *Service) auditf(kind audit.Kind, queryID, actor string, details any) {
	d, err := audit.Details(details)
	if err == nil {
		_, err = s.cfg.Audit.Append(context.WithoutCancel(s.ctx), audit.Entry{Kind: kind, QueryID: queryID, Actor: actor, Details: d})
	}
	if err != nil {
		s.log.Error("failed to append to the audit chain", "kind", kind, "query", queryID, "err", err)
	}
}

// expireLoop ends queries whose approvals did not come in time.
func (s *Service) expireLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		var due []string
		_ = s.cfg.Store.ForEach(store.Queries, func(k, v []byte) error {
			var r record
			if json.Unmarshal(v, &r) == nil && !r.Expires.IsZero() && now.After(r.Expires) &&
				(r.Status == api.StatusAwaitingApproval || r.Status == api.StatusApproved) {
				due = append(due, string(k))
			}
			return nil
		})
		for _, id := range due {
			r, err := s.update(id, func(r *record) error {
				if r.Status != api.StatusAwaitingApproval && r.Status != api.StatusApproved {
					return errSkip
				}
				r.Status, r.Error, r.Finished = api.StatusExpired, "the proposal expired before every participant approved it", now
				return nil
			})
			if err == nil {
				s.auditf(audit.KindFailure, id, audit.ActorLocal, map[string]any{"status": api.StatusExpired, "role": r.Role})
			}
		}
	}
}

var errSkip = errors.New("skip")

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

// protocolMode maps a plugin's protocol to the ECDH-PSI mode it runs.
func protocolMode(p plugins.Protocol) (ecdh.Mode, error) {
	switch p {
	case plugins.Cardinality:
		return ecdh.Cardinality, nil
	case plugins.Intersection:
		return ecdh.Intersection, nil
	case plugins.Sum, plugins.Labeled:
		return 0, nil
	}
	return 0, fmt.Errorf("%w: the plugin needs protocol %s, which this node does not run yet", api.ErrInvalid, p)
}

func revealed(p plugins.Protocol) string {
	if p == plugins.Labeled {
		return "the querier learned which of its identifiers are on each peer's list and their labels; each peer learned only how many identifiers were checked"
	}
	if p == plugins.Sum {
		return "the querier learned the element-wise sum over every participant's contribution and nothing about any one; participants learned nothing"
	}
	if p == plugins.Intersection {
		return "the querier learned which of its identifiers each peer also holds; each peer learned only the querier's set size"
	}
	return "the querier learned how many identifiers it shares with each peer; each peer learned only the querier's set size"
}
