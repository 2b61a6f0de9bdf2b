package ecdh

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"xnode/crypto"
	"xnode/protocol"
	"xnode/protocol/internal/par"
	"xnode/protocol/psi/ecdh/pb"
)

type rState int

const (
	rAwaitHello rState = iota
	rAccept
	rQuery       // receiving query batches
	rCardReplies // sending sorted digests (cardinality)
	rPeer        // sending b·H(y) batches
	rAwaitMatches
	rDone
)

// Responder is the party that answers: it holds Y. Its methods are not safe
// for concurrent use, except Stats.
type Responder struct {
	cfg    Config
	key    crypto.Key
	dst    []byte
	prefix []byte
	items  Source
	m      int
	n      int
	batchQ int // querier's batch size
	state  rState
	meter  meter

	// query phase
	querySeq uint64
	queried  int
	out      [][]byte           // replies ready to send (intersection modes)
	card     [][DigestSize]byte // cardinality mode: all digests, sorted before sending
	cardOff  int

	// peer phase
	peer    []byte   // b·H(y) for all of Y, in source order
	perm    []uint32 // perm[i] = source position of the i-th element sent
	peerOff int

	// matches (intersection-both)
	matchSeq uint64
	lastPos  int64
	matches  []int

	err error
}

var _ protocol.Machine = (*Responder)(nil)

// NewResponder prepares the responder's side of a session over items.
func NewResponder(cfg Config, items Source) (*Responder, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := items.Len()
	if m < 0 || m > maxSetSize {
		return nil, fmt.Errorf("ecdh-psi: %d items, want at most %d", m, maxSetSize)
	}
	key, err := cfg.Suite.NewKey(cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("ecdh-psi: %w", err)
	}
	r := &Responder{
		cfg:     cfg,
		key:     key,
		dst:     crypto.DST("psi-ecdh", cfg.Suite.Name(), cfg.Session),
		prefix:  comparePrefix(cfg.Suite.Name(), cfg.Session),
		items:   items,
		m:       m,
		lastPos: -1,
	}
	r.meter.enter(PhaseHandshake, 0)
	return r, nil
}

// Stats reports progress; safe to call from another goroutine.
func (r *Responder) Stats() Stats { return r.meter.stats() }

// Done implements protocol.Machine.
func (r *Responder) Done() bool { return r.state == rDone }

// Result returns what the responder learned; it is an error before Done.
func (r *Responder) Result() (Result, error) {
	if r.state != rDone {
		return Result{}, errors.New("ecdh-psi: session not finished")
	}
	res := Result{Mode: r.cfg.Mode, PeerSize: r.n}
	if r.cfg.Mode == IntersectionBoth {
		res.Matches = r.matches
		res.Cardinality = distinctCount(r.matches, r.peer, r.cfg.Suite.ElementSize())
	}
	return res, nil
}

// distinctCount counts distinct items among matched positions, telling
// duplicates apart by their blinded elements.
func distinctCount(pos []int, peer []byte, size int) int {
	if len(pos) == 0 {
		return 0
	}
	seen := make(map[string]struct{}, len(pos))
	for _, p := range pos {
		seen[string(peer[p*size:(p+1)*size])] = struct{}{}
	}
	return len(seen)
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
	case rAccept:
		r.state = rQuery
		r.meter.enter(PhaseReply, int64(r.n))
		msg, err := encode(&pb.Envelope{Body: &pb.Envelope_Accept{Accept: &pb.Accept{Size: uint64(r.m)}}})
		if err != nil {
			return nil, r.fail(err)
		}
		return msg, nil
	case rQuery:
		if len(r.out) > 0 {
			msg := r.out[0]
			r.out[0] = nil
			r.out = r.out[1:]
			return msg, nil
		}
		if r.queried < r.n {
			return nil, nil
		}
		if r.cfg.Mode == Cardinality {
			start := time.Now()
			slices.SortFunc(r.card, func(a, b [DigestSize]byte) int { return bytes.Compare(a[:], b[:]) })
			r.meter.add(PhaseReply, 0, time.Since(start))
			r.state = rCardReplies
		} else {
			r.state = rPeer
		}
		return r.Next()
	case rCardReplies:
		return r.cardBatch()
	case rPeer:
		msg, err := r.peerBatch()
		if err != nil {
			return nil, r.fail(err)
		}
		return msg, nil
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
		if r.state != rAwaitHello {
			break
		}
		return r.fail(r.onHello(body.Hello))
	case *pb.Envelope_Query:
		if r.state != rQuery {
			break
		}
		return r.fail(r.onQuery(body.Query))
	case *pb.Envelope_Matches:
		if r.state != rAwaitMatches {
			break
		}
		return r.fail(r.onMatches(body.Matches))
	}
	return r.fail(fmt.Errorf("%w: unexpected %T in responder state %d", ErrProtocol, env.Body, r.state))
}

func (r *Responder) onHello(h *pb.Hello) error {
	switch {
	case h.Version != Version:
		return fmt.Errorf("%w: querier speaks version %d, this node %d", ErrMismatch, h.Version, Version)
	case h.Suite != r.cfg.Suite.Name():
		return fmt.Errorf("%w: querier uses suite %q, this session %q", ErrMismatch, h.Suite, r.cfg.Suite.Name())
	case h.Mode != r.cfg.Mode.pb():
		return fmt.Errorf("%w: querier asks for mode %v, this session allows %v", ErrMismatch, h.Mode, r.cfg.Mode)
	case subtle.ConstantTimeCompare(h.Session, r.cfg.Session) != 1:
		return fmt.Errorf("%w: querier names another session", ErrMismatch)
	case r.cfg.QuerierSize > 0 && h.Size != uint64(r.cfg.QuerierSize):
		return fmt.Errorf("%w: querier declares %d items, it agreed to %d", ErrMismatch, h.Size, r.cfg.QuerierSize)
	case h.Size > uint64(min(r.cfg.MaxPeerSize, maxSetSize)):
		return fmt.Errorf("%w: querier declares %d items, more than the limit of %d", ErrProtocol, h.Size, r.cfg.MaxPeerSize)
	case h.Batch == 0 || h.Batch > MaxBatchSize:
		return fmt.Errorf("%w: querier batch size %d, want 1 to %d", ErrProtocol, h.Batch, MaxBatchSize)
	}
	r.n = int(h.Size)
	r.batchQ = int(h.Batch)
	if r.cfg.Mode == Cardinality {
		// The querier's declared size is not trusted with memory up front:
		// the buffer grows with the digests that actually arrive.
		r.card = make([][DigestSize]byte, 0, min(r.n, MaxBatchSize))
	}
	r.state = rAccept
	return nil
}

func (r *Responder) onQuery(e *pb.Elements) error {
	if e.Seq != r.querySeq {
		return fmt.Errorf("%w: query batch %d, want %d", ErrProtocol, e.Seq, r.querySeq)
	}
	size := r.cfg.Suite.ElementSize()
	k, err := crypto.Count(e.Packed, size)
	if want := min(r.batchQ, r.n-r.queried); err != nil || k != want {
		return fmt.Errorf("%w: query batch %d of %d bytes, want %d elements of %d bytes", ErrProtocol, e.Seq, len(e.Packed), want, size)
	}
	start := time.Now()
	digests := make([]byte, k*DigestSize)
	err = par.For(par.Workers(r.cfg.Workers), k, chunk, func(lo, hi int) error {
		d := newDigester(r.prefix, size)
		elem := make([]byte, size)
		for i := lo; i < hi; i++ {
			if err := r.key.Blind(elem, e.Packed[i*size:(i+1)*size]); err != nil {
				return fmt.Errorf("%w: query element %d: %v", ErrProtocol, r.queried+i, err)
			}
			d.digest(digests[i*DigestSize:], elem)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.meter.add(PhaseReply, k, time.Since(start))
	if r.cfg.Mode == Cardinality {
		for i := 0; i < k; i++ {
			r.card = append(r.card, [DigestSize]byte(digests[i*DigestSize:(i+1)*DigestSize]))
		}
	} else {
		msg, err := encode(&pb.Envelope{Body: &pb.Envelope_Reply{Reply: &pb.Digests{Seq: e.Seq, Packed: digests}}})
		if err != nil {
			return err
		}
		r.out = append(r.out, msg)
	}
	r.queried += k
	r.querySeq++
	return nil
}

// cardBatch sends the sorted digests of cardinality mode.
func (r *Responder) cardBatch() ([]byte, error) {
	if r.cardOff == len(r.card) {
		r.card = nil
		r.state = rPeer
		return r.Next()
	}
	end := min(r.cardOff+MaxBatchSize, len(r.card))
	packed := make([]byte, 0, (end-r.cardOff)*DigestSize)
	for _, d := range r.card[r.cardOff:end] {
		packed = append(packed, d[:]...)
	}
	seq := uint64(r.cardOff / MaxBatchSize)
	r.cardOff = end
	return encode(&pb.Envelope{Body: &pb.Envelope_Reply{Reply: &pb.Digests{Seq: seq, Packed: packed}}})
}

// peerBatch sends the next batch of b·H(y) in the secret order π, blinding
// all of Y on the first call.
func (r *Responder) peerBatch() ([]byte, error) {
	if r.perm == nil {
		if err := r.blindPeer(); err != nil {
			return nil, err
		}
	}
	if r.peerOff == r.m {
		if r.cfg.Mode == IntersectionBoth {
			r.state = rAwaitMatches
			r.meter.enter(PhaseFinish, 0)
		} else {
			r.peer, r.perm = nil, nil
			r.state = rDone
			r.meter.enter(PhaseDone, 0)
		}
		return nil, nil
	}
	size := r.cfg.Suite.ElementSize()
	end := min(r.peerOff+r.cfg.BatchSize, r.m)
	packed := make([]byte, 0, (end-r.peerOff)*size)
	for _, p := range r.perm[r.peerOff:end] {
		packed = append(packed, r.peer[int(p)*size:(int(p)+1)*size]...)
	}
	seq := uint64(r.peerOff / r.cfg.BatchSize)
	r.peerOff = end
	return encode(&pb.Envelope{Body: &pb.Envelope_Peer{Peer: &pb.Elements{Seq: seq, Packed: packed}}})
}

// blindPeer computes b·H(y) for every item of Y and draws the secret
// permutation π they are sent in.
func (r *Responder) blindPeer() error {
	r.meter.enter(PhasePeer, int64(r.m))
	size := r.cfg.Suite.ElementSize()
	r.peer = make([]byte, r.m*size)
	buf := make([][]byte, r.cfg.BatchSize)
	for off := 0; off < r.m; {
		want := min(r.cfg.BatchSize, r.m-off)
		if err := readFull(r.items, buf[:want], off, r.m, "responder"); err != nil {
			return err
		}
		start := time.Now()
		base := off
		err := par.For(par.Workers(r.cfg.Workers), want, chunk, func(lo, hi int) error {
			for i := lo; i < hi; i++ {
				j := base + i
				if err := r.key.HashBlind(r.peer[j*size:(j+1)*size], buf[i], r.dst); err != nil {
					return err
				}
			}
			return nil
		})
		clear(buf[:want])
		if err != nil {
			return fmt.Errorf("failed to blind the responder's items: %w", err)
		}
		r.meter.add(PhasePeer, want, time.Since(start))
		off += want
	}
	var seed [32]byte
	if _, err := io.ReadFull(r.cfg.Rand, seed[:]); err != nil {
		return fmt.Errorf("failed to draw the shuffle seed: %w", err)
	}
	rng := rand.New(rand.NewChaCha8(seed))
	r.perm = make([]uint32, r.m)
	for i := range r.perm {
		r.perm[i] = uint32(i)
	}
	rng.Shuffle(len(r.perm), func(i, j int) { r.perm[i], r.perm[j] = r.perm[j], r.perm[i] })
	return nil
}

func (r *Responder) onMatches(mt *pb.Matches) error {
	if mt.Seq != r.matchSeq {
		return fmt.Errorf("%w: matches batch %d, want %d", ErrProtocol, mt.Seq, r.matchSeq)
	}
	if len(mt.Positions) > MaxBatchSize {
		return fmt.Errorf("%w: matches batch of %d positions, at most %d", ErrProtocol, len(mt.Positions), MaxBatchSize)
	}
	for _, p := range mt.Positions {
		if int64(p) <= r.lastPos || p >= uint64(r.m) {
			return fmt.Errorf("%w: match position %d out of order or beyond %d", ErrProtocol, p, r.m)
		}
		r.lastPos = int64(p)
		r.matches = append(r.matches, int(r.perm[p]))
	}
	r.matchSeq++
	if mt.Last {
		slices.Sort(r.matches)
		if r.matches == nil {
			r.matches = []int{}
		}
		r.state = rDone
		r.meter.enter(PhaseDone, 0)
	}
	return nil
}
