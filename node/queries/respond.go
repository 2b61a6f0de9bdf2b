package queries

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"xnode/crypto"
	"xnode/node/api"
	"xnode/node/audit"
	"xnode/node/identity"
	"xnode/node/membership"
	"xnode/node/policy"
	"xnode/node/queries/pb"
	"xnode/plugins"
	"xnode/protocol"
)

// Rule names of refusals that come before policy.
const (
	RulePluginDigest = "plugin-digest"
	RuleDataset      = "dataset"
	RuleProposal     = "proposal"
)

// handleControl serves /xnode/query/1.0.0: proposals to us, and notices
// about our own queries.
func (s *Service) handleControl(ctx context.Context, remote *membership.Cert, c protocol.Conn) error {
	var msg pb.Control
	if err := recvProto(ctx, c, &msg); err != nil {
		return err
	}
	var ans *pb.Answer
	switch body := msg.Body.(type) {
	case *pb.Control_Propose:
		ans = s.onProposal(remote, body.Propose)
	case *pb.Control_Notice:
		ans = s.onNotice(remote.PeerID, body.Notice)
	default:
		return errors.New("empty control message")
	}
	return sendProto(ctx, c, ans)
}

// verifyProposal checks the signature against the sender's peer ID and
// decodes the proposal.
func verifyProposal(sender peer.ID, sp *pb.SignedProposal) (*pb.Proposal, error) {
	var p pb.Proposal
	if err := proto.Unmarshal(sp.Proposal, &p); err != nil {
		return nil, fmt.Errorf("malformed proposal")
	}
	if p.QuerierId != sender.String() {
		return nil, fmt.Errorf("proposal names querier %s but came from %s", p.QuerierId, sender)
	}
	if !identity.Verify(sender, append([]byte(proposalDomain), sp.Proposal...), sp.Signature) {
		return nil, errors.New("bad proposal signature")
	}
	if len(p.QueryId) != 32 {
		return nil, errors.New("bad query id")
	}
	if _, err := hex.DecodeString(p.QueryId); err != nil {
		return nil, errors.New("bad query id")
	}
	return &p, nil
}

// onProposal decides on a peer's proposal: digest, dataset, policy, rate.
func (s *Service) onProposal(remote *membership.Cert, sp *pb.SignedProposal) *pb.Answer {
	p, err := verifyProposal(remote.PeerID, sp)
	if err != nil {
		s.log.Info("refused a proposal", "peer", remote.Name, "err", err)
		s.auditf(audit.KindPeerRefused, "", remote.PeerID.String(), map[string]any{"peer": remote.Name, "reason": err.Error()})
		return &pb.Answer{Status: api.StatusDenied, Rule: RuleProposal, Reason: "the proposal did not verify"}
	}
	if _, err := s.load(p.QueryId); err == nil {
		return &pb.Answer{Status: api.StatusDenied, Rule: RuleProposal, Reason: "query id already used"}
	}
	now := s.now()
	expires := time.Unix(p.ExpiresUnix, 0).UTC()
	r := record{
		Query: api.Query{
			ID: p.QueryId, Kind: p.PluginName, Role: roleResponder, Querier: p.QuerierName,
			Plugin: &api.PluginRef{Name: p.PluginName, Version: p.PluginVersion, Digest: p.PluginDigest},
			Params: p.Params, Protocol: p.Protocol, Suite: p.Suite, Dataset: p.Dataset,
			Peers: []string{p.QuerierName}, Created: now, Expires: expires,
			Summary: api.QuerySummary{PeerSizes: map[string]int{p.QuerierName: int(p.QuerierSetSize)}, Revealed: revealed(plugins.Protocol(p.Protocol))},
		},
		Proposal:  protoBytes(sp),
		QuerierID: remote.PeerID.String(),
		Roster:    append([]string{remote.PeerID.String()}, p.PeerIds...),
	}
	decide := func(status, rule, reason string) *pb.Answer {
		r.Status = status
		r.PeerStates = []api.PeerState{{Peer: audit.ActorLocal, Status: status, Rule: rule, Reason: reason}}
		if status == api.StatusDenied {
			r.Error, r.Finished = "denied by rule "+rule+": "+reason, now
		}
		s.recMu.Lock()
		err := s.save(r)
		s.recMu.Unlock()
		if err != nil {
			s.log.Error("failed to save a proposal", "query", r.ID, "err", err)
			return &pb.Answer{Status: statusRefused, Reason: "the participant could not record the proposal"}
		}
		kind := audit.KindApproval
		if status == api.StatusDenied {
			kind = audit.KindDenial
		}
		actor := "rule:" + rule
		if status != api.StatusAwaitingApproval {
			s.auditf(kind, r.ID, actor, map[string]any{"status": status, "rule": rule, "reason": reason, "querier": p.QuerierName})
		}
		s.log.Info("proposal decided", "query", r.ID, "querier", p.QuerierName, "plugin", p.PluginName, "status", status, "rule", rule)
		return &pb.Answer{Status: status, Rule: rule, Reason: reason}
	}
	s.auditf(audit.KindProposal, r.ID, remote.PeerID.String(), map[string]any{
		"role": roleResponder, "querier": p.QuerierName, "plugin": r.Plugin, "params": p.Params, "protocol": p.Protocol,
		"dataset": p.Dataset, "querier_set_size": p.QuerierSetSize, "peers": p.Peers, "suite": p.Suite, "expires": expires,
	})
	if !expires.After(now) {
		return decide(api.StatusDenied, RuleProposal, "the proposal has already expired")
	}
	if _, err := crypto.Lookup(p.Suite); err != nil {
		return decide(api.StatusDenied, RuleProposal, fmt.Sprintf("this node does not know suite %q", p.Suite))
	}
	inst, err := s.cfg.Registry.Get(p.PluginName)
	if err != nil {
		return decide(api.StatusDenied, RulePluginDigest, fmt.Sprintf("plugin %s is not installed at this node", p.PluginName))
	}
	if inst.Digest != p.PluginDigest {
		return decide(api.StatusDenied, RulePluginDigest, fmt.Sprintf("this node approved plugin %s with digest %s, the query names %s", p.PluginName, inst.Digest, p.PluginDigest))
	}
	if _, err := protocolMode(inst.Protocol); err != nil || string(inst.Protocol) != p.Protocol {
		return decide(api.StatusDenied, RulePluginDigest, fmt.Sprintf("plugin %s runs %s here, the query names %s", p.PluginName, inst.Protocol, p.Protocol))
	}
	view, err := s.cfg.Datasets.Open(s.ctx, p.Dataset, 0)
	if err != nil {
		return decide(api.StatusDenied, RuleDataset, fmt.Sprintf("this node has no dataset %q", p.Dataset))
	}
	r.DatasetVersion = view.Version()
	r.Summary.OwnSize = view.Len()
	view.Close()
	d := s.cfg.Policy.Evaluate(policy.Request{
		Plugin: p.PluginName, PluginDigest: p.PluginDigest, Dataset: p.Dataset,
		Peer:           policy.Peer{Name: remote.Name, ID: remote.PeerID.String()},
		QuerierSetSize: int(p.QuerierSetSize), Now: now, Parties: parties(p),
	})
	if d.Verdict == policy.Deny {
		return decide(api.StatusDenied, d.Rule, d.Reason)
	}
	if err := s.cfg.Limiter.Take(remote.PeerID.String(), d, now); err != nil {
		return decide(api.StatusDenied, d.Rule, err.Error())
	}
	r.Decision = &d
	if d.Verdict == policy.Manual {
		return decide(api.StatusAwaitingApproval, d.Rule, "waiting for this node's operator (`xnode query approve "+r.ID+"`)")
	}
	return decide(api.StatusApproved, d.Rule, d.Reason)
}

// maxProposedSetSize bounds the querier set size a proposal may name.
const maxProposedSetSize = 1 << 31

// proposedSetSize is the querier's set size in the signed proposal this
// participant approved (its policy checked it): a protocol run holds the
// querier to it.
func proposedSetSize(r record) (int, error) {
	var sp pb.SignedProposal
	var p pb.Proposal
	if err := proto.Unmarshal(r.Proposal, &sp); err != nil {
		return 0, fmt.Errorf("the stored proposal of query %s does not decode: %w", r.ID, err)
	}
	if err := proto.Unmarshal(sp.Proposal, &p); err != nil {
		return 0, fmt.Errorf("the stored proposal of query %s does not decode: %w", r.ID, err)
	}
	if p.QuerierSetSize >= maxProposedSetSize {
		return 0, fmt.Errorf("the proposal of query %s names a querier set of %d items, more than %d", r.ID, p.QuerierSetSize, maxProposedSetSize)
	}
	return int(p.QuerierSetSize), nil
}

// parties is the number of parties of a secure aggregation, the querier
// included, or 0 for other protocols.
func parties(p *pb.Proposal) int {
	if plugins.Protocol(p.Protocol) != plugins.Sum {
		return 0
	}
	return len(p.PeerIds) + 1
}

func protoBytes(m proto.Message) []byte {
	b, _ := proto.Marshal(m)
	return b
}

// Approve approves a query waiting for this node's operator and tells the
// querier.
func (s *Service) Approve(_ context.Context, id string) (api.Query, error) {
	return s.decideLocal(id, api.StatusApproved, "")
}

// Deny denies a query waiting for this node's operator and tells the
// querier why.
func (s *Service) Deny(_ context.Context, id string, reason string) (api.Query, error) {
	if reason == "" {
		return api.Query{}, fmt.Errorf("%w: give the querier a reason with --reason", api.ErrInvalid)
	}
	return s.decideLocal(id, api.StatusDenied, reason)
}

func (s *Service) decideLocal(id, status, reason string) (api.Query, error) {
	now := s.now()
	r, err := s.update(id, func(r *record) error {
		if r.Role != roleResponder {
			return fmt.Errorf("%w: query %s is this node's own; only its participants approve it", api.ErrConflict, id)
		}
		if r.Status != api.StatusAwaitingApproval {
			return fmt.Errorf("%w: query %s is %s, not awaiting approval", api.ErrConflict, id, r.Status)
		}
		if !now.Before(r.Expires) {
			return fmt.Errorf("%w: query %s expired at %s", api.ErrConflict, id, r.Expires.Format(time.RFC3339))
		}
		r.Status = status
		r.PeerStates = []api.PeerState{{Peer: audit.ActorLocal, Status: status, Rule: "manual", Reason: reason}}
		if status == api.StatusDenied {
			r.Error, r.Finished = "denied by this node's operator: "+reason, now
		}
		return nil
	})
	if err != nil {
		return api.Query{}, err
	}
	kind := audit.KindApproval
	if status == api.StatusDenied {
		kind = audit.KindDenial
	}
	s.auditf(kind, id, audit.ActorLocal, map[string]any{"status": status, "rule": "manual", "reason": reason, "querier": r.Querier})
	notice := &pb.Control{Body: &pb.Control_Notice{Notice: &pb.Notice{QueryId: id, Status: status, Rule: "manual", Reason: reason}}}
	s.goOwned(func() { s.notify(r.QuerierID, id, notice) })
	return r.Query, nil
}

// notify tells the querier of a decision, retrying for a while if it is
// unreachable.
func (s *Service) notify(querierID, id string, n *pb.Control) {
	delay := time.Second
	for attempt := 0; attempt < 8; attempt++ {
		ans, err := s.control(querierID, n)
		if err == nil {
			if ans.Status != statusOK {
				s.log.Warn("querier did not take the decision", "query", id, "answer", ans.Status, "reason", ans.Reason)
			}
			return
		}
		s.log.Info("querier not reachable for a decision; retrying", "query", id, "err", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay *= 2
	}
}
