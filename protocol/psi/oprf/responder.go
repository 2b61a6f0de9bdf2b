package oprf

import (
	"errors"
	"fmt"

	"github.com/cloudflare/circl/oprf"

	"xnode/protocol"
	"xnode/protocol/internal/par"
	"xnode/protocol/psi/oprf/pb"
)

// ResponderConfig configures the responder's side of a session.
type ResponderConfig struct {
	// Epoch is the current epoch (its key evaluates, its commitment is
	// announced).
	Epoch *Epoch
	// Encoding is the current labeled encoding of the epoch.
	Encoding *Encoding
	// Membership is its membership form; if nil it is derived from Encoding
	// when a querier asks for it (costly for large lists: pass it).
	Membership *MembershipSet
	// Deltas are the epoch's deltas the responder can still send, in any
	// order; a querier whose cache is older than the oldest gets the full
	// encoding.
	Deltas []*Delta
	// Budget, if set, is called with the number of identifiers of each
	// query before it is evaluated. An error refuses the session: the
	// querier hears only that its budget is exhausted, and Result returns
	// the error (wrapped in ErrRefusedBudget).
	Budget func(n int) error
	// MaxItems refuses sessions that declare more identifiers (default
	// DefaultMaxQueryItems).
	MaxItems int
	// QuerierCount, if positive, is the number of identifiers the querier
	// agreed to before the session (the node: the set size in the signed
	// proposal its policy checked). A Hello declaring another count is a
	// protocol violation, so a querier cannot check fewer identifiers than
	// were approved.
	QuerierCount int
	// ChunkSize is the size of encoding chunks sent (default
	// DefaultChunkSize, at most protocol.MaxMessageSize-1024).
	ChunkSize int
	// Workers bounds the goroutines of one call (default GOMAXPROCS).
	Workers int
}

// ResponderResult is what the responder learned: how much it sent and
// evaluated, nothing about the identifiers.
type ResponderResult struct {
	Form      Form
	Sync      SyncKind
	Evaluated int
}

type rState int

const (
	rAwaitHello rState = iota
	rSync
	rQuery
	rRefuse
	rDone
)

// Responder is the party that answers. Its methods are not safe for
// concurrent use.
type Responder struct {
	cfg   ResponderConfig
	srv   oprf.VerifiableServer
	state rState

	form     Form
	kind     SyncKind
	count    int
	batch    int
	syncMsg  []byte
	objects  []*chunker
	chunkSeq uint32

	evaluated int
	recvSeq   uint64
	out       [][]byte
	reason    pb.Reason
	refused   error

	err error
}

var _ protocol.Machine = (*Responder)(nil)

// NewResponder prepares a session.
func NewResponder(cfg ResponderConfig) (*Responder, error) {
	if cfg.Epoch == nil || cfg.Encoding == nil {
		return nil, errors.New("psi-oprf: responder needs an epoch and its encoding")
	}
	if cfg.Encoding.Commitment() != cfg.Epoch.Commitment() {
		return nil, fmt.Errorf("%w: encoding of %v, epoch is %v", ErrStale, cfg.Encoding.Commitment(), cfg.Epoch.Commitment())
	}
	if m := cfg.Membership; m != nil && (m.Commitment() != cfg.Encoding.Commitment() || m.Version() != cfg.Encoding.Version()) {
		return nil, fmt.Errorf("%w: membership form is not the encoding's", ErrStale)
	}
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = DefaultMaxQueryItems
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.ChunkSize < MinChunkSize || cfg.ChunkSize > protocol.MaxMessageSize-1024 {
		return nil, fmt.Errorf("psi-oprf: chunk size %d, want %d to %d", cfg.ChunkSize, MinChunkSize, protocol.MaxMessageSize-1024)
	}
	return &Responder{cfg: cfg, srv: oprf.NewVerifiableServer(suite, cfg.Epoch.key)}, nil
}

// Done implements protocol.Machine.
func (r *Responder) Done() bool { return r.state == rDone }

// Result returns what the responder learned. After a refusal it returns the
// result so far and the refusal (errors.Is ErrRefused).
func (r *Responder) Result() (ResponderResult, error) {
	res := ResponderResult{Form: r.form, Sync: r.kind, Evaluated: r.evaluated}
	if r.refused != nil {
		return res, r.refused
	}
	if r.state != rDone || r.err != nil {
		return res, errors.New("psi-oprf: session not finished")
	}
	return res, nil
}

func (r *Responder) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	return r.err
}

// Next implements protocol.Machine.
func (r *Responder) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	switch r.state {
	case rRefuse:
		r.state = rDone
		return encode(&pb.Envelope{Body: &pb.Envelope_Refuse{Refuse: &pb.Refuse{Reason: r.reason}}})
	case rSync:
		if r.syncMsg != nil {
			m := r.syncMsg
			r.syncMsg = nil
			return m, nil
		}
		for len(r.objects) > 0 {
			c, err := r.objects[0].next()
			if err != nil {
				return nil, r.fail(err)
			}
			if c != nil {
				seq := r.chunkSeq
				r.chunkSeq++
				return encode(&pb.Envelope{Body: &pb.Envelope_Chunk{Chunk: &pb.Chunk{Seq: seq, Data: c}}})
			}
			r.objects = r.objects[1:]
		}
		if r.count == 0 {
			r.state = rDone
		} else {
			r.state = rQuery
		}
		return nil, nil
	case rQuery:
		if len(r.out) > 0 {
			m := r.out[0]
			r.out = r.out[1:]
			if r.evaluated == r.count && len(r.out) == 0 {
				r.state = rDone
			}
			return m, nil
		}
	}
	return nil, nil
}

// Deliver implements protocol.Machine.
func (r *Responder) Deliver(msg []byte) error {
	if r.err != nil {
		return r.err
	}
	env, err := decode(msg)
	if err != nil {
		return r.fail(err)
	}
	switch body := env.Body.(type) {
	case *pb.Envelope_Hello:
		if r.state == rAwaitHello {
			return r.fail(r.onHello(body.Hello))
		}
	case *pb.Envelope_Query:
		if r.state == rQuery {
			return r.fail(r.onQuery(body.Query))
		}
	}
	return r.fail(fmt.Errorf("%w: unexpected %T in responder state %d", ErrProtocol, env.Body, r.state))
}

func (r *Responder) refuse(reason pb.Reason, err error) error {
	r.reason, r.refused, r.state = reason, err, rRefuse
	return nil
}

func (r *Responder) onHello(h *pb.Hello) error {
	r.form = formOf(h.Form)
	if h.Version != Version || h.Suite != SuiteName || r.form == 0 {
		return r.refuse(pb.Reason_REASON_UNSUPPORTED, ErrRefusedUnsupported)
	}
	if len(h.PublicKey) != 0 && len(h.PublicKey) != ElementSize {
		return fmt.Errorf("%w: hello public key of %d bytes", ErrProtocol, len(h.PublicKey))
	}
	if r.cfg.QuerierCount > 0 && h.Count != uint64(r.cfg.QuerierCount) {
		return fmt.Errorf("%w: querier declares %d identifiers, it agreed to %d", ErrProtocol, h.Count, r.cfg.QuerierCount)
	}
	if h.Count > uint64(r.cfg.MaxItems) || h.Batch < 1 || h.Batch > MaxBatchSize {
		return r.refuse(pb.Reason_REASON_TOO_LARGE, ErrRefusedTooLarge)
	}
	r.count, r.batch = int(h.Count), int(h.Batch)

	enc := r.cfg.Encoding
	com := enc.Commitment()
	cur := enc.Version()
	sameKey := h.Epoch == com.Epoch && string(h.PublicKey) == string(com.PublicKey[:])
	var deltas []*Delta
	switch {
	case sameKey && h.HaveVersion == cur:
		r.kind = SyncCurrent
	case sameKey && h.HaveVersion >= 1 && h.HaveVersion < cur:
		deltas = r.chain(h.HaveVersion, cur)
	}
	if r.kind == 0 && deltas != nil {
		r.kind = SyncDeltas
		for _, d := range deltas {
			if r.form == Membership {
				d = d.forMembership()
			}
			c, err := d.serializer(r.cfg.ChunkSize)
			if err != nil {
				return err
			}
			r.objects = append(r.objects, c)
		}
	} else if r.kind == 0 {
		r.kind = SyncFull
		var s Set = enc
		if r.form == Membership {
			if r.cfg.Membership == nil {
				r.cfg.Membership = enc.Membership()
			}
			s = r.cfg.Membership
		}
		c, err := s.serializer(r.cfg.ChunkSize)
		if err != nil {
			return err
		}
		r.objects = []*chunker{c}
	}
	kinds := map[SyncKind]pb.SyncKind{SyncCurrent: pb.SyncKind_SYNC_CURRENT, SyncFull: pb.SyncKind_SYNC_FULL, SyncDeltas: pb.SyncKind_SYNC_DELTAS}
	msg, err := encode(&pb.Envelope{Body: &pb.Envelope_Sync{Sync: &pb.Sync{
		Epoch: com.Epoch, PublicKey: com.PublicKey[:], Version: cur, Kind: kinds[r.kind], Objects: uint32(len(r.objects)),
	}}})
	if err != nil {
		return err
	}
	r.syncMsg, r.state = msg, rSync
	return nil
}

// chain returns the deltas from version `from` to `to`, or nil if one is
// missing or they are together larger than half the encoding.
func (r *Responder) chain(from, to uint64) []*Delta {
	by := make(map[uint64]*Delta, len(r.cfg.Deltas))
	for _, d := range r.cfg.Deltas {
		if d.com == r.cfg.Encoding.com {
			by[d.from] = d
		}
	}
	var out []*Delta
	size := 0
	for v := from; v < to; v++ {
		d := by[v]
		if d == nil || d.to != v+1 {
			return nil
		}
		size += len(d.added) + len(d.removed)
		out = append(out, d)
	}
	if size > r.cfg.Encoding.Len()/2+16 {
		return nil
	}
	return out
}

func (r *Responder) onQuery(q *pb.Query) error {
	want := min(r.batch, r.count-r.evaluated)
	if q.Seq != r.recvSeq || len(q.Packed) != want*ElementSize {
		return fmt.Errorf("%w: query %d of %d bytes, want query %d of %d elements", ErrProtocol, q.Seq, len(q.Packed), r.recvSeq, want)
	}
	if r.cfg.Budget != nil {
		if err := r.cfg.Budget(want); err != nil {
			return r.refuse(pb.Reason_REASON_BUDGET, fmt.Errorf("%w: %w", ErrRefusedBudget, err))
		}
	}
	elems, err := decodeElements(q.Packed, r.cfg.Workers)
	if err != nil {
		return err
	}
	packed := make([]byte, want*ElementSize)
	ng := groups(want)
	proofs := make([]byte, ng*ProofSize)
	err = par.For(par.Workers(r.cfg.Workers), ng, 1, func(lo, hi int) error {
		for k := lo; k < hi; k++ {
			a, b := k*ProofGroup, min((k+1)*ProofGroup, want)
			ev, err := r.srv.Evaluate(&oprf.EvaluationRequest{Elements: elems[a:b]})
			if err != nil {
				return fmt.Errorf("failed to evaluate: %w", err)
			}
			for i, e := range ev.Elements {
				enc, err := e.MarshalBinaryCompress()
				if err != nil {
					return err
				}
				copy(packed[(a+i)*ElementSize:], enc)
			}
			pr, err := ev.Proof.MarshalBinary()
			if err != nil {
				return err
			}
			copy(proofs[k*ProofSize:], pr)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.evaluated += want
	msg, err := encode(&pb.Envelope{Body: &pb.Envelope_Evaluated{Evaluated: &pb.Evaluated{Seq: q.Seq, Packed: packed, Proofs: proofs}}})
	if err != nil {
		return err
	}
	r.recvSeq++
	r.out = append(r.out, msg)
	return nil
}
