package oprf

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/oprf"

	"xnode/protocol"
	"xnode/protocol/internal/par"
	"xnode/protocol/psi/oprf/pb"
)

// QuerierConfig configures the querier's side of a session.
type QuerierConfig struct {
	// Form is the encoding the querier keeps (default Labeled).
	Form Form
	// Cache is the querier's cached encoding of this responder, or nil. It
	// must be of Form. If it is the responder's current one nothing is
	// transferred; if it is an older version of the current epoch, deltas.
	Cache Set
	// Pin, if set, is the commitment the querier insists on (the one the
	// responder published to the consortium). A responder presenting
	// another key is refused with ErrCommitment.
	Pin *Commitment
	// BatchSize is identifiers per Query (default DefaultBatchSize, at most
	// MaxBatchSize).
	BatchSize int
	// Window is how many queries may be outstanding (default DefaultWindow).
	Window int
	// Workers bounds the goroutines of one call (default GOMAXPROCS).
	Workers int
	// Rand is the source of the blinds (default crypto/rand).
	Rand io.Reader
	// MaxItems refuses encodings and deltas of more items (default
	// DefaultMaxItems).
	MaxItems int
}

func (c QuerierConfig) withDefaults() (QuerierConfig, error) {
	if c.Form == 0 {
		c.Form = Labeled
	}
	if c.Form != Labeled && c.Form != Membership {
		return c, fmt.Errorf("psi-oprf: %v is not a form", c.Form)
	}
	if c.Cache != nil && c.Cache.Form() != c.Form {
		return c, fmt.Errorf("psi-oprf: cached encoding is %v, session wants %v", c.Cache.Form(), c.Form)
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		return c, fmt.Errorf("psi-oprf: batch size %d, want 1 to %d", c.BatchSize, MaxBatchSize)
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Window < 1 {
		return c, fmt.Errorf("psi-oprf: window %d, want at least 1", c.Window)
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.MaxItems <= 0 {
		c.MaxItems = DefaultMaxItems
	}
	return c, nil
}

// QuerierResult is what the querier learned.
type QuerierResult struct {
	// Commitment is the responder's current commitment; every evaluation
	// was proven against its public key.
	Commitment Commitment
	// Set is the now-current encoding; cache it for the next session.
	Set Set
	// Sync is what was transferred to bring the cache up to date.
	Sync SyncKind
	// Evaluated is the number of identifiers evaluated.
	Evaluated int
	// Matches are the identifiers found, by ascending Index. In the
	// membership form a match is wrong with probability at most
	// Set.FalsePositiveRate().
	Matches []Match
}

type qState int

const (
	qHello qState = iota
	qAwaitSync
	qSync
	qQuery
	qDone
)

type pending struct {
	start int
	n     int
	fin   []*oprf.FinalizeData
}

// Querier is the party that asks. Its methods are not safe for concurrent
// use.
type Querier struct {
	cfg   QuerierConfig
	ids   [][]byte
	state qState

	com     Commitment
	kind    SyncKind
	set     Set
	objects int // objects left to receive
	version uint64
	dec     *Decoder
	chunks  uint32
	client  oprf.VerifiableClient

	sent, done int
	sentSeq    uint64
	recvSeq    uint64
	pend       []pending
	matches    []Match
	outputs    [][]byte // kept only by tests (keepOutputs)
	keep       bool

	err error
}

var _ protocol.Machine = (*Querier)(nil)

// NewQuerier prepares a session that looks up ids (normalised, namespaced
// identifiers, as the responder's item keys).
func NewQuerier(cfg QuerierConfig, ids [][]byte) (*Querier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Querier{cfg: cfg, ids: ids}, nil
}

// Done implements protocol.Machine.
func (q *Querier) Done() bool { return q.state == qDone }

// Result returns what the querier learned; it is an error before Done.
func (q *Querier) Result() (QuerierResult, error) {
	if q.state != qDone || q.err != nil {
		return QuerierResult{}, errors.New("psi-oprf: session not finished")
	}
	m := slices.Clone(q.matches)
	slices.SortFunc(m, func(a, b Match) int { return a.Index - b.Index })
	return QuerierResult{Commitment: q.com, Set: q.set, Sync: q.kind, Evaluated: q.done, Matches: m}, nil
}

func (q *Querier) fail(err error) error {
	if q.err == nil {
		q.err = err
	}
	return q.err
}

// Next implements protocol.Machine.
func (q *Querier) Next() ([]byte, error) {
	if q.err != nil {
		return nil, q.err
	}
	switch q.state {
	case qHello:
		h := &pb.Hello{Version: Version, Suite: SuiteName, Form: q.cfg.Form.pb(), Count: uint64(len(q.ids)), Batch: uint32(q.cfg.BatchSize)}
		if c := q.cfg.Cache; c != nil {
			com := c.Commitment()
			h.Epoch, h.PublicKey, h.HaveVersion = com.Epoch, bytes.Clone(com.PublicKey[:]), c.Version()
		}
		q.state = qAwaitSync
		return encode(&pb.Envelope{Body: &pb.Envelope_Hello{Hello: h}})
	case qQuery:
		if q.sent == len(q.ids) || len(q.pend) >= q.cfg.Window {
			return nil, nil
		}
		msg, err := q.query()
		if err != nil {
			return nil, q.fail(err)
		}
		return msg, nil
	}
	return nil, nil
}

// query blinds the next batch, one circl batch per proof group, in parallel.
func (q *Querier) query() ([]byte, error) {
	n := min(q.cfg.BatchSize, len(q.ids)-q.sent)
	g := group.Ristretto255
	blinds := make([]oprf.Blind, n)
	for i := range blinds {
		blinds[i] = g.RandomScalar(q.cfg.Rand)
	}
	p := pending{start: q.sent, n: n, fin: make([]*oprf.FinalizeData, groups(n))}
	packed := make([]byte, n*ElementSize)
	err := par.For(par.Workers(q.cfg.Workers), len(p.fin), 1, func(lo, hi int) error {
		for k := lo; k < hi; k++ {
			a, b := k*ProofGroup, min((k+1)*ProofGroup, n)
			fin, req, err := q.client.DeterministicBlind(q.ids[q.sent+a:q.sent+b], blinds[a:b])
			if err != nil {
				return fmt.Errorf("failed to blind identifiers %d to %d: %w", q.sent+a, q.sent+b, err)
			}
			for i, e := range req.Elements {
				enc, err := e.MarshalBinaryCompress()
				if err != nil {
					return err
				}
				copy(packed[(a+i)*ElementSize:], enc)
			}
			p.fin[k] = fin
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	q.pend = append(q.pend, p)
	q.sent += n
	seq := q.sentSeq
	q.sentSeq++
	return encode(&pb.Envelope{Body: &pb.Envelope_Query{Query: &pb.Query{Seq: seq, Packed: packed}}})
}

// Deliver implements protocol.Machine.
func (q *Querier) Deliver(msg []byte) error {
	if q.err != nil {
		return q.err
	}
	env, err := decode(msg)
	if err != nil {
		return q.fail(err)
	}
	switch body := env.Body.(type) {
	case *pb.Envelope_Refuse:
		if q.state == qAwaitSync || q.state == qQuery {
			q.state = qDone
			return q.fail(refusalError(body.Refuse.Reason))
		}
	case *pb.Envelope_Sync:
		if q.state == qAwaitSync {
			return q.fail(q.onSync(body.Sync))
		}
	case *pb.Envelope_Chunk:
		if q.state == qSync {
			return q.fail(q.onChunk(body.Chunk))
		}
	case *pb.Envelope_Evaluated:
		if q.state == qQuery {
			return q.fail(q.onEvaluated(body.Evaluated))
		}
	}
	return q.fail(fmt.Errorf("%w: unexpected %T in querier state %d", ErrProtocol, env.Body, q.state))
}

func (q *Querier) onSync(s *pb.Sync) error {
	if len(s.PublicKey) != ElementSize || s.Epoch == 0 || s.Version == 0 {
		return fmt.Errorf("%w: sync without a valid commitment", ErrProtocol)
	}
	if err := checkPublicKey(s.PublicKey); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	q.com.Epoch = s.Epoch
	copy(q.com.PublicKey[:], s.PublicKey)
	if q.cfg.Pin != nil && *q.cfg.Pin != q.com {
		return fmt.Errorf("%w: responder presents %v, pinned %v", ErrCommitment, q.com, *q.cfg.Pin)
	}
	var pk oprf.PublicKey
	_ = pk.UnmarshalBinary(suite, s.PublicKey)
	q.client = oprf.NewVerifiableClient(suite, &pk)
	q.version = s.Version
	cache := q.cfg.Cache
	switch s.Kind {
	case pb.SyncKind_SYNC_CURRENT:
		if cache == nil || cache.Commitment() != q.com || cache.Version() != s.Version || s.Objects != 0 {
			return fmt.Errorf("%w: responder calls the cache current, but it is not (%v version %d)", ErrStale, q.com, s.Version)
		}
		q.kind, q.set = SyncCurrent, cache
		return q.synced()
	case pb.SyncKind_SYNC_FULL:
		if s.Objects != 1 {
			return fmt.Errorf("%w: full sync of %d objects", ErrProtocol, s.Objects)
		}
		q.kind = SyncFull
	case pb.SyncKind_SYNC_DELTAS:
		if cache == nil || cache.Commitment() != q.com || s.Version <= cache.Version() || uint64(s.Objects) != s.Version-cache.Version() {
			return fmt.Errorf("%w: deltas to version %d do not apply to the cache", ErrStale, s.Version)
		}
		q.kind, q.set = SyncDeltas, cache
	default:
		return fmt.Errorf("%w: sync kind %v", ErrProtocol, s.Kind)
	}
	q.objects = int(s.Objects)
	q.dec = NewDecoder(q.cfg.MaxItems)
	q.state = qSync
	return nil
}

func (q *Querier) onChunk(c *pb.Chunk) error {
	if c.Seq != q.chunks {
		return fmt.Errorf("%w: chunk %d, want %d", ErrProtocol, c.Seq, q.chunks)
	}
	q.chunks++
	done, err := q.dec.Write(c.Data)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if !done {
		return nil
	}
	if q.kind == SyncFull {
		s, err := q.dec.Set()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		if s.Form() != q.cfg.Form {
			return fmt.Errorf("%w: got a %v encoding, asked for %v", ErrProtocol, s.Form(), q.cfg.Form)
		}
		q.set = s
	} else {
		d, err := q.dec.Delta()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		s, err := q.set.Apply(d)
		if err != nil {
			return err
		}
		q.set = s
	}
	q.objects--
	if q.objects > 0 {
		q.dec = NewDecoder(q.cfg.MaxItems)
		return nil
	}
	q.dec = nil
	if q.set.Commitment() != q.com || q.set.Version() != q.version {
		return fmt.Errorf("%w: received encoding is %v version %d, the responder's commitment is %v version %d",
			ErrStale, q.set.Commitment(), q.set.Version(), q.com, q.version)
	}
	return q.synced()
}

func (q *Querier) synced() error {
	if len(q.ids) == 0 {
		q.state = qDone
	} else {
		q.state = qQuery
	}
	return nil
}

func (q *Querier) onEvaluated(e *pb.Evaluated) error {
	if len(q.pend) == 0 || e.Seq != q.recvSeq {
		return fmt.Errorf("%w: evaluation %d, want %d", ErrProtocol, e.Seq, q.recvSeq)
	}
	p := q.pend[0]
	if len(e.Packed) != p.n*ElementSize || len(e.Proofs) != len(p.fin)*ProofSize {
		return fmt.Errorf("%w: evaluation %d holds %d bytes of elements and %d of proofs, want %d elements", ErrProtocol, e.Seq, len(e.Packed), len(e.Proofs), p.n)
	}
	elems, err := decodeElements(e.Packed, q.cfg.Workers)
	if err != nil {
		return err
	}
	outs := make([][]byte, p.n)
	labels := make([][]byte, p.n)
	hits := make([]bool, p.n)
	err = par.For(par.Workers(q.cfg.Workers), len(p.fin), 1, func(lo, hi int) error {
		for k := lo; k < hi; k++ {
			a, b := k*ProofGroup, min((k+1)*ProofGroup, p.n)
			proof, err := decodeProof(e.Proofs[k*ProofSize : (k+1)*ProofSize])
			if err != nil {
				return err
			}
			o, err := q.client.Finalize(p.fin[k], &oprf.Evaluation{Elements: elems[a:b], Proof: proof})
			if errors.Is(err, oprf.ErrInvalidProof) {
				return fmt.Errorf("%w (evaluation %d, group %d)", ErrProof, e.Seq, k)
			}
			if err != nil {
				return fmt.Errorf("%w: evaluation %d group %d: %v", ErrProtocol, e.Seq, k, err)
			}
			for i := range o {
				outs[a+i] = o[i]
				labels[a+i], hits[a+i], err = q.set.Lookup(o[i])
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range hits {
		if hits[i] {
			q.matches = append(q.matches, Match{Index: p.start + i, Labels: labels[i]})
		}
	}
	if q.keep {
		q.outputs = append(q.outputs, outs...)
	}
	q.pend = q.pend[1:]
	q.recvSeq++
	q.done += p.n
	if q.done == len(q.ids) {
		q.state = qDone
	}
	return nil
}
