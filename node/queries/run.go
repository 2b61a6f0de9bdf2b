package queries

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"

	"xnode/crypto"
	"xnode/node/api"
	"xnode/node/audit"
	"xnode/node/membership"
	"xnode/node/p2p"
	"xnode/node/queries/pb"
	"xnode/plugins"
	"xnode/protocol"
	"xnode/protocol/psi/ecdh"
)

// runQuerier runs an approved query: a protocol session with each peer,
// then the plugin's Finalize. items are the prepared input if still at
// hand (nil: prepare again from the proposed dataset version).
func (s *Service) runQuerier(r record, items *itemSet) {
	id := r.ID
	defer s.untrack(id)
	s.auditf(audit.KindRun, id, audit.ActorLocal, map[string]any{"role": roleQuerier, "peers": r.Peers})
	res, err := s.execute(r, items)
	if err != nil && s.ctx.Err() != nil {
		// The node is shutting down: whatever the session reported (a
		// stream reset, a peer gone), the stop is this node's.
		err = errStopped
	}
	// The audit entry comes first: once the record says done, its audit
	// trail is complete.
	if err != nil {
		s.log.Info("query failed", "query", id, "err", err)
		s.auditf(audit.KindFailure, id, audit.ActorLocal, map[string]any{"role": roleQuerier, "error": err.Error()})
	} else {
		s.auditf(audit.KindResult, id, audit.ActorLocal, map[string]any{
			"role": roleQuerier, "revealed_to": s.cfg.Name, "revealed": res.summary.Revealed,
			"per_peer": res.summary.PerPeer, "peer_sizes": res.summary.PeerSizes,
			"result_digest": res.commit.Digest, "result_rows": res.commit.Rows,
		})
	}
	final, uerr := s.update(id, func(rec *record) error {
		rec.Finished = s.now()
		if err != nil {
			rec.Status, rec.Error, rec.Result = api.StatusFailed, err.Error(), nil
			return nil
		}
		rec.Status = api.StatusDone
		rec.Summary, rec.Result, rec.Salt = res.summary, res.table, res.salt
		for i := range rec.PeerStates {
			rec.PeerStates[i].Status = api.StatusDone
		}
		return nil
	})
	if uerr != nil {
		s.log.Error("failed to save a query's outcome", "query", id, "err", uerr)
		return
	}
	if err == nil {
		s.log.Info("query done", "query", id, "plugin", final.Kind, "intersection_size", final.Summary.IntersectionSize)
	}
}

type outcome struct {
	summary api.QuerySummary
	table   *api.ResultTable
	salt    []byte
	commit  audit.Commitment
}

func (s *Service) execute(r record, items *itemSet) (outcome, error) {
	var out outcome
	ctx := s.ctx
	inst, err := s.pluginFor(r.Plugin)
	if err != nil {
		return out, err
	}
	plug, err := s.cfg.Registry.Launch(ctx, inst)
	if err != nil {
		return out, err
	}
	defer plug.Close()
	plan, err := plug.Plan(ctx, r.Params)
	if err != nil {
		return out, err
	}
	view, err := s.cfg.Datasets.Open(ctx, r.Dataset, r.DatasetVersion)
	if err != nil {
		return out, fmt.Errorf("dataset %s version %d is gone: %w", r.Dataset, r.DatasetVersion, err)
	}
	defer view.Close()
	if items == nil {
		if items, err = prepare(ctx, plug, view, plugins.Querier, r.Params, plan.QuerierColumns); err != nil {
			return out, err
		}
	}
	out.summary = r.Summary
	out.summary.OwnSize = len(items.pos)
	out.summary.PerPeer, out.summary.PeerSizes = map[string]int{}, map[string]int{}
	sess := querySession{r: r, view: view, items: items, plan: plan}
	var po protocolOutput
	switch inst.Protocol {
	case plugins.Cardinality, plugins.Intersection:
		po, err = s.runPSI(ctx, sess, inst.Protocol)
	case plugins.Sum:
		po, err = s.runSum(ctx, sess)
	case plugins.Labeled:
		po, err = s.runLabeled(ctx, sess)
	default:
		err = fmt.Errorf("the plugin needs protocol %s, which this node does not run", inst.Protocol)
	}
	if err != nil {
		return out, err
	}
	for _, o := range po.peers {
		out.summary.PerPeer[o.Peer] = int(o.Cardinality)
		out.summary.PeerSizes[o.Peer] = int(o.Size)
		out.summary.IntersectionSize += int(o.Cardinality)
	}
	outputs, matches := po.peers, po.matches
	cols, err := selectColumns(view.Columns(), plan.QuerierColumns)
	if err != nil {
		return out, err
	}
	table := &api.ResultTable{Columns: plan.ResultColumns, Rows: [][]string{}}
	mr := &matchReader{ctx: ctx, view: view, columns: plan.QuerierColumns, peers: matches}
	sum, err := plug.Finalize(ctx, plugins.FinalizeRequest{
		Params: r.Params, Columns: cols, OwnSize: int64(len(items.pos)), Peers: outputs,
		Aggregate: po.aggregate, Contributors: po.contributors,
	}, mr, func(rows []plugins.ResultRow) error {
		for _, row := range rows {
			if len(row) != len(plan.ResultColumns) && plan.ResultColumns[len(plan.ResultColumns)-1] != AllLabels {
				return fmt.Errorf("plugin emitted a row of %d cells, want %d", len(row), len(plan.ResultColumns))
			}
			table.Rows = append(table.Rows, append([]string(nil), row...))
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("the plugin failed to finalize the result: %w", err)
	}
	out.summary.Plugin = map[string]string(sum)
	// A plugin that learns column names only from the protocol (a plan
	// ending in AllLabels) names the whole header in its summary.
	if n := len(table.Columns); n > 0 && table.Columns[n-1] == AllLabels {
		hdr := strings.Split(sum["result_columns"], ",")
		if sum["result_columns"] == "" {
			hdr = table.Columns[:n-1]
		}
		for _, row := range table.Rows {
			if len(row) != len(hdr) {
				return out, fmt.Errorf("plugin result rows have %d cells but its header %v has %d", len(row), hdr, len(hdr))
			}
		}
		table.Columns = hdr
		delete(out.summary.Plugin, "result_columns")
	}
	out.table = table
	out.commit, err = audit.CommitResult(nil, table.Columns, table.Rows)
	if err != nil {
		return out, err
	}
	out.salt = out.commit.Salt
	return out, nil
}

// querySession is what a protocol run at the querier works from.
type querySession struct {
	r     record
	view  View
	items *itemSet
	plan  plugins.Plan
}

// protocolOutput is what a protocol revealed to the querier.
type protocolOutput struct {
	peers        []plugins.PeerOutput
	matches      []peerMatches
	aggregate    []int64
	contributors int
}

// runPSI runs ECDH-PSI with every peer in turn.
func (s *Service) runPSI(ctx context.Context, q querySession, p plugins.Protocol) (protocolOutput, error) {
	var out protocolOutput
	mode, err := protocolMode(p)
	if err != nil {
		return out, err
	}
	suite, err := crypto.Lookup(q.r.Suite)
	if err != nil {
		return out, err
	}
	for _, name := range q.r.Peers {
		pid, err := peer.Decode(q.r.PeerIDs[name])
		if err != nil {
			return out, err
		}
		res, err := s.ask(ctx, q.r.ID, pid, name, mode, suite, q.view, q.items)
		if err != nil {
			return out, err
		}
		out.peers = append(out.peers, plugins.PeerOutput{Peer: name, Size: int64(res.PeerSize), Cardinality: int64(res.Cardinality)})
		if mode != ecdh.Cardinality {
			pm := peerMatches{name: name, pos: make([]int64, len(res.Matches))}
			for i, m := range res.Matches {
				pm.pos[i] = q.items.pos[m]
			}
			out.matches = append(out.matches, pm)
		}
	}
	return out, nil
}

// ask runs the querier's side of one protocol session with one peer.
func (s *Service) ask(ctx context.Context, id string, p peer.ID, name string, mode ecdh.Mode, suite crypto.Suite, view View, items *itemSet) (ecdh.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	fail := func(format string, args ...any) (ecdh.Result, error) {
		return ecdh.Result{}, fmt.Errorf("peer %s: "+format, append([]any{name}, args...)...)
	}
	conn, err := s.openSession(ctx, id, p.String(), PSIProtocol, membership.RolePSI)
	if err != nil {
		if serr := s.sessionEnded(ctx, name, "PSI"); serr != nil {
			return ecdh.Result{}, serr
		}
		return fail("failed to start a PSI session: %v; check that the peer is running and connected (`xnode peers list`)", err)
	}
	defer conn.Reset() // a no-op after Close
	src, err := newSource(ctx, view, items)
	if err != nil {
		return ecdh.Result{}, err
	}
	m, err := ecdh.NewQuerier(ecdh.Config{Suite: suite, Mode: mode, Session: sessionID(id, s.cfg.Network.ID(), p)}, src)
	if err != nil {
		return ecdh.Result{}, err
	}
	s.track(id, name, m.Stats)
	if err := protocol.Run(ctx, m, conn); err != nil {
		if serr := s.sessionEnded(ctx, name, "PSI"); serr != nil {
			return ecdh.Result{}, serr
		}
		return fail("the PSI session broke off: %v; check the peer and submit the query again", err)
	}
	_ = conn.Close()
	return m.Result()
}

// sessionEnded explains a session with peer name that ctx ended: this
// node is closing, or the session deadline (psi.timeout_seconds) passed.
// It returns nil if ctx is still live: the session failed for another
// reason.
func (s *Service) sessionEnded(ctx context.Context, name, what string) error {
	switch {
	case s.ctx.Err() != nil:
		return fmt.Errorf("peer %s: the %s session stopped because this node is shutting down; submit the query again once it runs", name, what)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("peer %s: the %s session hit its deadline: it did not finish within %v (psi.timeout_seconds); "+
			"the peer is slow or stopped answering, or the link to it is congested. Check the peer and the link, "+
			"or raise psi.timeout_seconds in config.toml if sessions this large need longer, then submit the query again",
			name, what, s.cfg.Timeout)
	}
	return nil
}

// openSession opens a protocol stream to a participant and asks it to run
// an approved query.
func (s *Service) openSession(ctx context.Context, id, peerID string, proto libp2pproto.ID, role string) (p2p.StreamConn, error) {
	pid, err := peer.Decode(peerID)
	if err != nil {
		return nil, err
	}
	conn, err := s.cfg.Network.Open(ctx, pid, proto, role)
	if err != nil {
		return nil, err
	}
	if err := sendProto(ctx, conn, &pb.RunRequest{QueryId: id}); err != nil {
		_ = conn.Reset()
		return nil, err
	}
	var ans pb.Answer
	if err := recvProto(ctx, conn, &ans); err != nil {
		_ = conn.Reset()
		return nil, err
	}
	if ans.Status != statusOK {
		_ = conn.Reset()
		return nil, fmt.Errorf("it refused to run the query: %s", ans.Reason)
	}
	return conn, nil
}

// handleRun serves a protocol session of a query this node approved,
// within the session deadline (psi.timeout_seconds) as the querier's side
// is.
func (s *Service) handleRun(ctx context.Context, remote *membership.Cert, c protocol.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var req pb.RunRequest
	if err := recvProto(ctx, c, &req); err != nil {
		return err
	}
	refuse := func(reason string) error {
		return sendProto(ctx, c, &pb.Answer{Status: statusRefused, Reason: reason})
	}
	now := s.now()
	var r record
	r, err := s.update(req.QueryId, func(r *record) error {
		switch {
		case r.Role != roleResponder || r.QuerierID != remote.PeerID.String():
			return errSkip
		case r.Status != api.StatusApproved:
			return fmt.Errorf("the query is %s here", r.Status)
		case !now.Before(r.Expires):
			return fmt.Errorf("the approval expired")
		}
		r.Status = api.StatusRunning
		return nil
	})
	if err == errSkip || (err != nil && r.ID == "") {
		return refuse("no such query was proposed to this node")
	}
	if err != nil {
		return refuse(err.Error())
	}
	s.auditf(audit.KindRun, r.ID, remote.PeerID.String(), map[string]any{"role": roleResponder, "querier": remote.Name})
	defer s.untrack(r.ID)
	res, runErr := s.serveRun(ctx, remote, c, r)
	if runErr != nil {
		s.auditf(audit.KindFailure, r.ID, remote.PeerID.String(), map[string]any{"role": roleResponder, "error": runErr.Error()})
	} else {
		s.auditf(audit.KindResult, r.ID, remote.PeerID.String(), map[string]any{
			"role": roleResponder, "revealed_to": remote.Name, "revealed": r.Summary.Revealed,
			"dataset": r.Dataset, "dataset_version": r.DatasetVersion, "own_size": res.ownSize,
			"querier_set_size": res.PeerSize,
		})
	}
	_, uerr := s.update(r.ID, func(rec *record) error {
		rec.Finished = s.now()
		if runErr != nil {
			rec.Status, rec.Error = api.StatusFailed, fmt.Sprintf("the session with %s broke off: %v", remote.Name, runErr)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				rec.Error = fmt.Sprintf("the session with %s hit its deadline: it did not finish within %v (psi.timeout_seconds); "+
					"the querier is slow or stopped reading, or the link to it is congested. The querier may submit the query again; "+
					"raise psi.timeout_seconds in config.toml if sessions this large need longer", remote.Name, s.cfg.Timeout)
			}
			return nil
		}
		rec.Status = api.StatusDone
		rec.Summary.OwnSize = res.ownSize
		rec.Summary.PeerSizes = map[string]int{remote.Name: res.PeerSize}
		return nil
	})
	if uerr != nil {
		s.log.Error("failed to save a query's outcome", "query", r.ID, "err", uerr)
	}
	return runErr
}

type served struct {
	ecdh.Result
	ownSize int
}

// participantRun is what a participant's protocol runner works from: the
// approved record, the view, and its prepared input.
type participantRun struct {
	r      record
	remote *membership.Cert
	view   View
	items  *itemSet
	plan   plugins.Plan
}

// runner runs the participant's side of one protocol over c, after the
// node has told the querier it is ready.
type runner func(ctx context.Context, p participantRun, c protocol.Conn) (ecdh.Result, error)

func (s *Service) serveRun(ctx context.Context, remote *membership.Cert, c protocol.Conn, r record) (served, error) {
	var out served
	refuse := func(reason string, err error) (served, error) {
		_ = sendProto(ctx, c, &pb.Answer{Status: statusRefused, Reason: reason})
		return out, err
	}
	inst, err := s.pluginFor(r.Plugin)
	if err != nil {
		return refuse("this node's plugin changed since it approved the query", err)
	}
	var run runner
	switch inst.Protocol {
	case plugins.Cardinality, plugins.Intersection:
		run = s.servePSI
	case plugins.Sum:
		run = s.serveSum
	case plugins.Labeled:
		run = s.serveLabeled
	default:
		return refuse("unsupported protocol", fmt.Errorf("protocol %s", inst.Protocol))
	}
	plug, err := s.cfg.Registry.Launch(ctx, inst)
	if err != nil {
		return refuse("this node could not start the plugin", err)
	}
	defer plug.Close()
	plan, err := plug.Plan(ctx, r.Params)
	if err != nil {
		return refuse("the plugin refused the parameters", err)
	}
	view, err := s.cfg.Datasets.Open(ctx, r.Dataset, r.DatasetVersion)
	if err != nil {
		return refuse("the approved dataset version is gone", err)
	}
	defer view.Close()
	items, err := prepare(ctx, plug, view, plugins.Responder, r.Params, plan.ResponderColumns)
	if err != nil {
		return refuse("this node could not prepare its input", err)
	}
	out.ownSize = len(items.pos)
	if err := sendProto(ctx, c, &pb.Answer{Status: statusOK}); err != nil {
		return out, err
	}
	out.Result, err = run(ctx, participantRun{r: r, remote: remote, view: view, items: items, plan: plan}, c)
	return out, err
}

// servePSI runs the responder's side of ECDH-PSI.
func (s *Service) servePSI(ctx context.Context, p participantRun, c protocol.Conn) (ecdh.Result, error) {
	mode, err := protocolMode(plugins.Protocol(p.r.Protocol))
	if err != nil {
		return ecdh.Result{}, err
	}
	suite, err := crypto.Lookup(p.r.Suite)
	if err != nil {
		return ecdh.Result{}, err
	}
	src, err := newSource(ctx, p.view, p.items)
	if err != nil {
		return ecdh.Result{}, err
	}
	size, err := proposedSetSize(p.r)
	if err != nil {
		return ecdh.Result{}, err
	}
	m, err := ecdh.NewResponder(ecdh.Config{
		Suite: suite, Mode: mode, Session: sessionID(p.r.ID, p.remote.PeerID, s.cfg.Network.ID()), QuerierSize: size,
	}, src)
	if err != nil {
		return ecdh.Result{}, err
	}
	s.track(p.r.ID, p.remote.Name, m.Stats)
	if err := protocol.Run(ctx, m, c); err != nil {
		return ecdh.Result{}, err
	}
	return m.Result()
}
