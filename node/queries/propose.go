package queries

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"xnode/crypto"
	"xnode/node/api"
	"xnode/node/audit"
	"xnode/node/queries/pb"
	"xnode/node/registry"
	"xnode/plugins"
	"xnode/protocol"
)

// proposalDomain prefixes what a proposal signature covers.
const proposalDomain = "xnode-proposal-v1"

// Submit checks a query with its plugin, proposes it to every peer, and
// runs it once all approve. It returns the record as proposed.
func (s *Service) Submit(ctx context.Context, req api.QueryRequest) (api.Query, error) {
	name := req.Plugin
	if name == "" {
		name = req.Kind
	} else if req.Kind != "" && req.Kind != req.Plugin {
		return api.Query{}, fmt.Errorf("%w: --kind %q and --plugin %q differ; --kind is an alias of --plugin", api.ErrInvalid, req.Kind, req.Plugin)
	}
	if name == "" {
		return api.Query{}, fmt.Errorf("%w: name the plugin to run with --plugin (see `xnode plugin list`)", api.ErrInvalid)
	}
	if req.Dataset == "" {
		return api.Query{}, fmt.Errorf("%w: name the dataset to query with --dataset", api.ErrInvalid)
	}
	if len(req.Peers) == 0 {
		return api.Query{}, fmt.Errorf("%w: name at least one peer with --peers (see `xnode peers list`)", api.ErrInvalid)
	}
	suite, err := crypto.Lookup(firstNonEmpty(req.Suite, s.cfg.Suite))
	if err != nil {
		return api.Query{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	inst, err := s.cfg.Registry.Get(name)
	if err != nil {
		return api.Query{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	if _, err := protocolMode(inst.Protocol); err != nil {
		return api.Query{}, err
	}
	plug, err := s.cfg.Registry.Launch(ctx, inst)
	if err != nil {
		return api.Query{}, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	defer plug.Close()
	view, err := s.cfg.Datasets.Open(ctx, req.Dataset, 0)
	if err != nil {
		return api.Query{}, err
	}
	defer view.Close()
	if inst.Protocol == plugins.Sum {
		if len(req.Peers)+1 < MinSumParties {
			return api.Query{}, fmt.Errorf("%w: a secure sum needs at least %d parties, this node and %d peers; name more peers", api.ErrInvalid, MinSumParties, MinSumParties-1)
		}
		if req.Params, err = discoverCategories(ctx, plug.Descriptor(), view, req.Params); err != nil {
			return api.Query{}, err
		}
	}
	plan, err := plug.Plan(ctx, req.Params)
	if err != nil {
		if errors.Is(err, plugins.ErrInvalidParams) {
			return api.Query{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
		}
		return api.Query{}, fmt.Errorf("plugin %s failed to plan the query: %w", name, err)
	}
	items, err := prepare(ctx, plug, view, plugins.Querier, req.Params, plan.QuerierColumns)
	if err != nil {
		if errors.Is(err, errInvalidColumns) {
			return api.Query{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
		}
		return api.Query{}, err
	}
	type target struct {
		id   peer.ID
		name string
	}
	var targets []target
	seen := map[peer.ID]bool{}
	for _, p := range req.Peers {
		id, pname, err := s.cfg.Peers.Resolve(ctx, strings.TrimSpace(p))
		if err != nil {
			return api.Query{}, err
		}
		if id == s.cfg.Network.ID() {
			return api.Query{}, fmt.Errorf("%w: %q is this node itself; name other members", api.ErrInvalid, p)
		}
		if seen[id] {
			return api.Query{}, fmt.Errorf("%w: peer %q is named twice", api.ErrInvalid, p)
		}
		seen[id] = true
		targets = append(targets, target{id, pname})
	}
	qid, err := newID()
	if err != nil {
		return api.Query{}, err
	}
	peerDataset := firstNonEmpty(req.PeerDataset, req.Dataset)
	now := s.now()
	r := record{
		Query: api.Query{
			ID: qid, Kind: inst.Name, Role: roleQuerier, Status: api.StatusProposed,
			Plugin: &api.PluginRef{Name: inst.Name, Version: inst.Version, Digest: inst.Digest},
			Params: req.Params, Protocol: string(inst.Protocol),
			Dataset: req.Dataset, DatasetVersion: view.Version(), PeerDataset: peerDataset,
			Suite: suite.Name(), Created: now, Expires: now.Add(s.cfg.ProposalTTL),
			Summary: api.QuerySummary{OwnSize: len(items.pos), Revealed: revealed(inst.Protocol)},
		},
		PeerIDs: map[string]string{},
	}
	for _, t := range targets {
		r.Peers = append(r.Peers, t.name)
		r.PeerIDs[t.name] = t.id.String()
		r.PeerStates = append(r.PeerStates, api.PeerState{Peer: t.name, Status: api.StatusProposed})
	}
	prop := &pb.Proposal{
		QueryId: qid, QuerierId: s.cfg.Network.ID().String(), QuerierName: s.cfg.Name,
		PluginName: inst.Name, PluginVersion: inst.Version, PluginDigest: inst.Digest,
		Params: req.Params, Protocol: string(inst.Protocol), Suite: suite.Name(), Dataset: peerDataset,
		QuerierSetSize: uint64(len(items.pos)), Peers: r.Peers, PeerIds: peerIDList(r),
		CreatedUnix: now.Unix(), ExpiresUnix: r.Expires.Unix(),
	}
	signed, err := s.sign(prop)
	if err != nil {
		return api.Query{}, err
	}
	r.Proposal = signed
	s.recMu.Lock()
	err = s.save(r)
	s.recMu.Unlock()
	if err != nil {
		return api.Query{}, err
	}
	s.auditf(audit.KindProposal, qid, audit.ActorLocal, map[string]any{
		"role": roleQuerier, "plugin": r.Plugin, "params": req.Params, "protocol": r.Protocol,
		"dataset": req.Dataset, "dataset_version": view.Version(), "set_size": len(items.pos),
		"peers": r.Peers, "peer_dataset": peerDataset, "suite": suite.Name(),
	})
	if !s.goOwned(func() { s.propose(qid, signed, r.PeerIDs, items) }) {
		return api.Query{}, fmt.Errorf("%w: the node is shutting down", api.ErrUnavailable)
	}
	return r.Query, nil
}

// discoverCategories lets the querier propose the category list of a
// grouped secure sum: when a plugin takes a "categories" parameter and the
// analyst gave none, it is the sorted distinct values of the querier's own
// "group" column. The list travels in the signed proposal, so participants
// see the querier's categories, never each other's; their rows outside the
// list fall into the plugin's "(other)" bucket.
func discoverCategories(ctx context.Context, d plugins.Descriptor, v View, params map[string]string) (map[string]string, error) {
	hasParam := func(name string) bool {
		return slices.ContainsFunc(d.Params, func(p plugins.Param) bool { return p.Name == name })
	}
	group := params["group"]
	if !hasParam("categories") || !hasParam("group") || params["categories"] != "" || group == "" {
		return params, nil
	}
	if _, err := selectColumns(v.Columns(), []string{group}); err != nil {
		return nil, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	rows, err := v.Rows(ctx, []string{group})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for {
		chunk, err := rows.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		for _, r := range chunk {
			if len(r.Values) == 1 && !r.Values[0].Null && r.Values[0].Text != "" {
				seen[r.Values[0].Text] = true
			}
		}
	}
	cats := make([]string, 0, len(seen))
	for c := range seen {
		if strings.ContainsRune(c, ',') {
			return nil, fmt.Errorf("%w: category %q contains a comma; give --param categories=… explicitly", api.ErrInvalid, c)
		}
		cats = append(cats, c)
	}
	if len(cats) == 0 {
		return nil, fmt.Errorf("%w: the querier's column %q has no categories to propose; give --param categories=…", api.ErrInvalid, group)
	}
	slices.Sort(cats)
	out := maps.Clone(params)
	out["categories"] = strings.Join(cats, ",")
	return out, nil
}

func peerIDList(r record) []string {
	out := make([]string, 0, len(r.Peers))
	for _, name := range r.Peers {
		out = append(out, r.PeerIDs[name])
	}
	return out
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func (s *Service) sign(p *pb.Proposal) ([]byte, error) {
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return nil, err
	}
	sig := s.cfg.Identity.Sign(append([]byte(proposalDomain), body...))
	return proto.Marshal(&pb.SignedProposal{Proposal: body, Signature: sig})
}

// propose sends the signed proposal to every peer and acts on the answers.
// items, if not nil, are the querier's prepared input, reused if the query
// can run at once.
func (s *Service) propose(id string, signed []byte, peerIDs map[string]string, items *itemSet) {
	var sp pb.SignedProposal
	_ = proto.Unmarshal(signed, &sp)
	answers := map[string]*pb.Answer{}
	for name, pid := range peerIDs {
		ans, err := s.control(pid, &pb.Control{Body: &pb.Control_Propose{Propose: &sp}})
		if err != nil {
			ans = &pb.Answer{Status: statusRefused, Reason: err.Error()}
		}
		answers[name] = ans
		s.auditAnswer(id, pid, name, ans.Status, ans.Rule, ans.Reason)
	}
	r, err := s.update(id, func(r *record) error {
		for i := range r.PeerStates {
			a := answers[r.PeerStates[i].Peer]
			if a == nil {
				continue
			}
			r.PeerStates[i].Status, r.PeerStates[i].Rule, r.PeerStates[i].Reason = a.Status, a.Rule, a.Reason
		}
		s.settleLocked(r)
		return nil
	})
	if err != nil {
		s.log.Error("failed to record proposal answers", "query", id, "err", err)
		return
	}
	s.afterSettle(r, items)
}

// auditAnswer records a participant's answer to our proposal.
func (s *Service) auditAnswer(id, peerID, name, status, rule, reason string) {
	kind := audit.Kind("awaiting-approval")
	switch status {
	case api.StatusApproved:
		kind = audit.KindApproval
	case api.StatusDenied, statusRefused:
		kind = audit.KindDenial
	}
	s.auditf(kind, id, peerID, map[string]any{"role": roleQuerier, "peer": name, "status": status, "rule": rule, "reason": reason})
}

// settleLocked derives a querier record's status from its peers' states.
func (s *Service) settleLocked(r *record) {
	if api.Finished(r.Status) || r.Status == api.StatusRunning {
		return
	}
	all := true
	for _, ps := range r.PeerStates {
		switch ps.Status {
		case api.StatusDenied, statusRefused:
			r.Status = api.StatusDenied
			if ps.Status == statusRefused {
				r.Status = api.StatusFailed
			}
			r.Error = fmt.Sprintf("peer %s %s the query", ps.Peer, map[bool]string{true: "refused", false: "denied"}[ps.Status == statusRefused])
			if ps.Rule != "" {
				r.Error += " (rule " + ps.Rule + ")"
			}
			if ps.Reason != "" {
				r.Error += ": " + ps.Reason
			}
			r.Finished = s.now()
			return
		case api.StatusApproved:
		default:
			all = false
		}
	}
	if all {
		r.Status = api.StatusRunning
	} else {
		r.Status = api.StatusAwaitingApproval
	}
}

// afterSettle audits a final decision or starts the run.
func (s *Service) afterSettle(r record, items *itemSet) {
	switch r.Status {
	case api.StatusDenied, api.StatusFailed:
		s.auditf(audit.KindFailure, r.ID, audit.ActorLocal, map[string]any{"role": roleQuerier, "status": r.Status, "peer_states": r.PeerStates})
		s.log.Info("query not approved", "query", r.ID, "err", r.Error)
	case api.StatusRunning:
		s.runQuerier(r, items)
	}
}

// control sends one Control message to a peer and returns its Answer.
func (s *Service) control(peerID string, msg *pb.Control) (*pb.Answer, error) {
	pid, err := peer.Decode(peerID)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	conn, err := s.cfg.Network.Open(ctx, pid, ControlProtocol, "")
	if err != nil {
		return nil, fmt.Errorf("not reachable: %v", err)
	}
	defer conn.Reset()
	if err := sendProto(ctx, conn, msg); err != nil {
		return nil, err
	}
	var ans pb.Answer
	if err := recvProto(ctx, conn, &ans); err != nil {
		return nil, fmt.Errorf("no answer: %v", err)
	}
	_ = conn.Close()
	return &ans, nil
}

func sendProto(ctx context.Context, c protocol.Conn, m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return c.Send(ctx, b)
}

func recvProto(ctx context.Context, c protocol.Conn, m proto.Message) error {
	b, err := c.Recv(ctx)
	if err != nil {
		return err
	}
	if len(b) > maxControlFrame {
		return fmt.Errorf("control message of %d bytes exceeds %d", len(b), maxControlFrame)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("malformed control message: %v", err)
	}
	return nil
}

// onNotice takes a participant's later decision on our query.
func (s *Service) onNotice(remote peer.ID, n *pb.Notice) *pb.Answer {
	var name string
	r, err := s.update(n.QueryId, func(r *record) error {
		if r.Role != roleQuerier {
			return errSkip
		}
		for i, ps := range r.PeerStates {
			if r.PeerIDs[ps.Peer] != remote.String() {
				continue
			}
			name = ps.Peer
			if ps.Status != api.StatusAwaitingApproval || (n.Status != api.StatusApproved && n.Status != api.StatusDenied) {
				return errSkip
			}
			r.PeerStates[i].Status, r.PeerStates[i].Rule, r.PeerStates[i].Reason = n.Status, n.Rule, n.Reason
			s.settleLocked(r)
			return nil
		}
		return errSkip
	})
	if err != nil {
		return &pb.Answer{Status: statusRefused, Reason: "no such query awaits this peer's approval"}
	}
	s.log.Info("participant decided", "query", r.ID, "peer", name, "status", n.Status)
	s.auditAnswer(r.ID, remote.String(), name, n.Status, n.Rule, n.Reason)
	s.goOwned(func() { s.afterSettle(r, nil) })
	return &pb.Answer{Status: statusOK}
}

// pluginFor returns the installed plugin a record names, checking that its
// digest is still the one the query was proposed with.
func (s *Service) pluginFor(ref *api.PluginRef) (registry.Plugin, error) {
	if ref == nil {
		return registry.Plugin{}, errors.New("the query names no plugin")
	}
	inst, err := s.cfg.Registry.Get(ref.Name)
	if err != nil {
		return inst, err
	}
	if inst.Digest != ref.Digest {
		return inst, fmt.Errorf("plugin %s was reinstalled since the query was proposed (digest %s, query names %s); submit the query again", ref.Name, inst.Digest, ref.Digest)
	}
	return inst, nil
}
