package ecdh

import (
	"errors"
	"fmt"
	"io"
	"time"

	"xnode/crypto"
	"xnode/protocol"
	"xnode/protocol/internal/par"
	"xnode/protocol/psi/ecdh/pb"
)

// chunk is the number of elements one goroutine processes at a time.
const chunk = 128

type qState int

const (
	qHello qState = iota
	qAwaitAccept
	qQuery // sending query batches, receiving replies
	qAwaitPeer
	qMatches // sending matches (intersection-both)
	qDone
)

// Querier is the party that asks: it holds X and learns the intersection or
// its size. Its methods are not safe for concurrent use, except Stats.
type Querier struct {
	cfg    Config
	key    crypto.Key
	dst    []byte
	prefix []byte
	items  Source
	n      int
	m      int
	state  qState
	meter  meter

	// query phase
	buf       [][]byte
	sentItems int    // items sent in query batches
	sentSeq   uint64 // query batches sent
	replySeq  uint64 // reply batches received
	replied   int    // reply digests received
	batchLens []int  // items in each outstanding query batch, in order

	tab table

	// peer phase
	peerSeq  uint64
	peerGot  int
	peerHits []int // positions in the responder's shuffled order that matched

	// matches phase (intersection-both)
	hitOff int

	err error
}

var _ protocol.Machine = (*Querier)(nil)

// NewQuerier prepares the querier's side of a session over items.
func NewQuerier(cfg Config, items Source) (*Querier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := items.Len()
	if n < 0 || n > maxSetSize {
		return nil, fmt.Errorf("ecdh-psi: %d items, want at most %d", n, maxSetSize)
	}
	key, err := cfg.Suite.NewKey(cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("ecdh-psi: %w", err)
	}
	q := &Querier{
		cfg:    cfg,
		key:    key,
		dst:    crypto.DST("psi-ecdh", cfg.Suite.Name(), cfg.Session),
		prefix: comparePrefix(cfg.Suite.Name(), cfg.Session),
		items:  items,
		n:      n,
		buf:    make([][]byte, cfg.BatchSize),
	}
	q.tab.entries = make([]entry, 0, n)
	q.meter.enter(PhaseHandshake, 0)
	return q, nil
}

// Stats reports progress; safe to call from another goroutine.
func (q *Querier) Stats() Stats { return q.meter.stats() }

// Done implements protocol.Machine.
func (q *Querier) Done() bool { return q.state == qDone }

// Result returns what the querier learned; it is an error before Done.
func (q *Querier) Result() (Result, error) {
	if q.state != qDone {
		return Result{}, errors.New("ecdh-psi: session not finished")
	}
	r := Result{Mode: q.cfg.Mode, PeerSize: q.m, Cardinality: q.tab.groups}
	if q.cfg.Mode.perBatchReplies() {
		r.Matches = q.tab.matches()
	}
	return r, nil
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
		q.state = qAwaitAccept
		return encode(&pb.Envelope{Body: &pb.Envelope_Hello{Hello: &pb.Hello{
			Version: Version,
			Suite:   q.cfg.Suite.Name(),
			Mode:    q.cfg.Mode.pb(),
			Session: q.cfg.Session,
			Size:    uint64(q.n),
			Batch:   uint32(q.cfg.BatchSize),
		}}})
	case qQuery:
		if q.sentItems == q.n {
			return nil, nil
		}
		if q.cfg.Mode.perBatchReplies() && len(q.batchLens) >= q.cfg.Window {
			return nil, nil
		}
		msg, err := q.queryBatch()
		if err != nil {
			return nil, q.fail(err)
		}
		return msg, nil
	case qMatches:
		return q.matchesBatch()
	}
	return nil, nil
}

// readFull fills dst from src; off and total say where the batch stands,
// for the error of a source that ends early.
func readFull(src Source, dst [][]byte, off, total int, who string) error {
	got := 0
	for got < len(dst) {
		k, err := src.Next(dst[got:])
		got += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("failed to read the %s's items: %w", who, err)
		}
		if k == 0 {
			return fmt.Errorf("failed to read the %s's items: source made no progress", who)
		}
	}
	if got != len(dst) {
		return fmt.Errorf("failed to read the %s's items: source ended after %d of %d", who, off+got, total)
	}
	return nil
}

// queryBatch reads the next batch of X and blinds it: a·H(x).
func (q *Querier) queryBatch() ([]byte, error) {
	want := min(q.cfg.BatchSize, q.n-q.sentItems)
	if err := readFull(q.items, q.buf[:want], q.sentItems, q.n, "querier"); err != nil {
		return nil, err
	}
	start := time.Now()
	size := q.cfg.Suite.ElementSize()
	packed := make([]byte, want*size)
	err := par.For(par.Workers(q.cfg.Workers), want, chunk, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			if err := q.key.HashBlind(packed[i*size:(i+1)*size], q.buf[i], q.dst); err != nil {
				return err
			}
		}
		return nil
	})
	clear(q.buf[:want])
	if err != nil {
		return nil, fmt.Errorf("failed to blind the querier's items: %w", err)
	}
	q.meter.add(PhaseQuery, want, time.Since(start))
	q.sentItems += want
	q.batchLens = append(q.batchLens, want)
	seq := q.sentSeq
	q.sentSeq++
	return encode(&pb.Envelope{Body: &pb.Envelope_Query{Query: &pb.Elements{Seq: seq, Packed: packed}}})
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
	case *pb.Envelope_Accept:
		if q.state != qAwaitAccept {
			break
		}
		if body.Accept.Size > uint64(min(q.cfg.MaxPeerSize, maxSetSize)) {
			return q.fail(fmt.Errorf("%w: responder declares %d items, more than the limit of %d", ErrProtocol, body.Accept.Size, q.cfg.MaxPeerSize))
		}
		q.m = int(body.Accept.Size)
		q.state = qQuery
		q.meter.enter(PhaseQuery, int64(q.n))
		q.afterReplies()
		return nil
	case *pb.Envelope_Reply:
		if q.state != qQuery {
			break
		}
		return q.fail(q.onReply(body.Reply))
	case *pb.Envelope_Peer:
		if q.state != qAwaitPeer {
			break
		}
		return q.fail(q.onPeer(body.Peer))
	}
	return q.fail(fmt.Errorf("%w: unexpected %T in querier state %d", ErrProtocol, env.Body, q.state))
}

func (q *Querier) onReply(r *pb.Digests) error {
	if r.Seq != q.replySeq {
		return fmt.Errorf("%w: reply batch %d, want %d", ErrProtocol, r.Seq, q.replySeq)
	}
	k := len(r.Packed) / DigestSize
	if len(r.Packed)%DigestSize != 0 || k == 0 {
		return fmt.Errorf("%w: reply of %d bytes is not a whole number of digests", ErrProtocol, len(r.Packed))
	}
	if q.cfg.Mode.perBatchReplies() {
		if len(q.batchLens) == 0 || k != q.batchLens[0] {
			return fmt.Errorf("%w: reply batch %d holds %d digests, want the %d sent", ErrProtocol, r.Seq, k, q.pending())
		}
		q.batchLens = q.batchLens[1:]
	} else if q.sentItems < q.n || q.replied+k > q.n {
		return fmt.Errorf("%w: %d reply digests before all queries were sent or beyond the %d sent", ErrProtocol, q.replied+k, q.n)
	}
	for i := 0; i < k; i++ {
		q.tab.add(r.Packed[i*DigestSize:(i+1)*DigestSize], uint32(q.replied+i))
	}
	q.replied += k
	q.replySeq++
	q.afterReplies()
	return nil
}

func (q *Querier) pending() int {
	if len(q.batchLens) == 0 {
		return 0
	}
	return q.batchLens[0]
}

// afterReplies moves on to the peer phase once every reply is in.
func (q *Querier) afterReplies() {
	if q.replied < q.n {
		return
	}
	start := time.Now()
	q.tab.seal()
	q.meter.add(PhaseMatch, 0, time.Since(start))
	q.state = qAwaitPeer
	q.meter.enter(PhaseMatch, int64(q.m))
	q.finishPeer()
}

func (q *Querier) onPeer(e *pb.Elements) error {
	if e.Seq != q.peerSeq {
		return fmt.Errorf("%w: peer batch %d, want %d", ErrProtocol, e.Seq, q.peerSeq)
	}
	size := q.cfg.Suite.ElementSize()
	k, err := crypto.Count(e.Packed, size)
	if err != nil || k == 0 || k > MaxBatchSize || q.peerGot+k > q.m {
		return fmt.Errorf("%w: peer batch %d of %d bytes (%d of %d items received)", ErrProtocol, e.Seq, len(e.Packed), q.peerGot, q.m)
	}
	start := time.Now()
	digests := make([]byte, k*DigestSize)
	err = par.For(par.Workers(q.cfg.Workers), k, chunk, func(lo, hi int) error {
		d := newDigester(q.prefix, size)
		elem := make([]byte, size)
		for i := lo; i < hi; i++ {
			if err := q.key.Blind(elem, e.Packed[i*size:(i+1)*size]); err != nil {
				return fmt.Errorf("%w: peer element %d: %v", ErrProtocol, q.peerGot+i, err)
			}
			d.digest(digests[i*DigestSize:], elem)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := 0; i < k; i++ {
		if q.tab.lookup(digests[i*DigestSize : (i+1)*DigestSize]) {
			q.peerHits = append(q.peerHits, q.peerGot+i)
		}
	}
	q.meter.add(PhaseMatch, k, time.Since(start))
	q.peerGot += k
	q.peerSeq++
	q.finishPeer()
	return nil
}

// finishPeer ends the peer phase once every peer element is in.
func (q *Querier) finishPeer() {
	if q.state != qAwaitPeer || q.peerGot < q.m {
		return
	}
	if q.cfg.Mode == IntersectionBoth {
		q.state = qMatches
		q.meter.enter(PhaseFinish, int64(len(q.peerHits)))
		return
	}
	q.peerHits = nil
	q.state = qDone
	q.meter.enter(PhaseDone, 0)
}

// matchesBatch sends the matched positions of the responder's shuffled
// elements, in batches of MaxBatchSize.
func (q *Querier) matchesBatch() ([]byte, error) {
	end := min(q.hitOff+MaxBatchSize, len(q.peerHits))
	pos := make([]uint64, 0, end-q.hitOff)
	for _, p := range q.peerHits[q.hitOff:end] {
		pos = append(pos, uint64(p))
	}
	seq := uint64(q.hitOff / MaxBatchSize)
	last := end == len(q.peerHits)
	q.hitOff = end
	if last {
		q.peerHits = nil
		q.state = qDone
		q.meter.enter(PhaseDone, 0)
	}
	return encode(&pb.Envelope{Body: &pb.Envelope_Matches{Matches: &pb.Matches{Seq: seq, Positions: pos, Last: last}}})
}
