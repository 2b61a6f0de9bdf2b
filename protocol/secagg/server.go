package secagg

import (
	"encoding/binary"
	"fmt"

	"xnode/protocol/secagg/pb"
)

// ServerConfig configures the server (the aggregator).
type ServerConfig struct {
	Config
}

// Server is the aggregator of a session. The caller hands it every message a
// client sends (Deliver), sends what it returns, and calls EndRound when the
// current round's deadline passes; clients that have not answered by then
// are dropped. A round also ends as soon as every remaining client has
// answered. The server owns no goroutine or clock and is not safe for
// concurrent use.
type Server struct {
	cfg Config
	idx map[ClientID]int
	n   int

	round    Round
	alive    []bool // still in the session
	answered []bool // answered the current round

	adverts []*pb.Advertise    // round 0, by sender
	cts     [][]*pb.Ciphertext // round 1, by sender
	u1, u2  []bool

	partial [][]uint64 // round 2: masked inputs still arriving, by sender
	got     []int      // round 2: elements received, by sender
	sum     []uint64   // round 2: sum of complete masked inputs
	u3      []uint32
	u3set   []bool

	sigs []*pb.Signature // round 3, by sender

	bShares map[uint32]map[uint32][]byte // round 4: owner → holder → share of b
	sShares map[uint32]map[uint32][]byte // round 4: owner → holder → share of s_sk

	result    []uint64
	survivors []ClientID
	err       error
}

// NewServer returns a server waiting for the clients' key advertisements.
func NewServer(cfg ServerConfig) (*Server, error) {
	c, idx, err := cfg.Config.check()
	if err != nil {
		return nil, err
	}
	n := len(c.Clients)
	s := &Server{
		cfg: c, idx: idx, n: n,
		alive:    make([]bool, n),
		answered: make([]bool, n),
		adverts:  make([]*pb.Advertise, n),
	}
	for i := range s.alive {
		s.alive[i] = true
	}
	return s, nil
}

// String identifies the server without printing any secret or share.
func (s *Server) String() string {
	return fmt.Sprintf("secagg.Server(%d clients, %v)", s.n, s.round)
}

// Round is the round the server is collecting, or RoundDone.
func (s *Server) Round() Round { return s.round }

// Done reports whether the session has ended, with a result or an error.
func (s *Server) Done() bool { return s.round == RoundDone }

// Waiting lists the clients whose message for the current round the server
// still awaits.
func (s *Server) Waiting() []ClientID {
	if s.round == RoundDone {
		return nil
	}
	var out []ClientID
	for i := range s.n {
		if s.alive[i] && !s.answered[i] {
			out = append(out, s.cfg.Clients[i])
		}
	}
	return out
}

// Result returns the sum mod 2^64 of the survivors' inputs and the survivors
// (the clients whose inputs are in the sum, in roster order). It returns
// ErrNotDone before the session ends, and the session's error (for example
// ErrTooFewSurvivors) if it aborted: there is never a partial result.
func (s *Server) Result() ([]uint64, []ClientID, error) {
	if s.round != RoundDone {
		return nil, nil, ErrNotDone
	}
	if s.err != nil {
		return nil, nil, s.err
	}
	return append([]uint64(nil), s.result...), append([]ClientID(nil), s.survivors...), nil
}

// Deliver hands the server one message from client from. It returns the
// messages to send when the message completed the round. An error concerns
// the sender only: the server has dropped it (if it was still in the
// session) and the session goes on; call Drop(from) to end the round at once
// if everyone else has answered, or wait for EndRound.
func (s *Server) Deliver(from ClientID, msg []byte) ([]Outgoing, error) {
	i, ok := s.idx[from]
	if !ok {
		return nil, fmt.Errorf("%w: message from %q, who is not in the roster", ErrProtocol, from)
	}
	if s.round == RoundDone {
		return nil, fmt.Errorf("%w: message from client %q after the session ended", ErrProtocol, from)
	}
	if !s.alive[i] {
		return nil, fmt.Errorf("%w: message from client %q, which was dropped", ErrProtocol, from)
	}
	if err := s.deliver(uint32(i), msg); err != nil {
		s.drop(i)
		return nil, fmt.Errorf("client %q: %w", from, err)
	}
	if !s.complete() {
		return nil, nil
	}
	return s.advance()
}

// Drop removes a client from the session (its stream failed, or it broke the
// protocol), as EndRound would. If every remaining client has then answered,
// the round ends and Drop returns the next round's messages (or
// ErrTooFewSurvivors). Dropping a client twice is harmless.
func (s *Server) Drop(id ClientID) ([]Outgoing, error) {
	i, ok := s.idx[id]
	if !ok {
		return nil, fmt.Errorf("secagg: %q is not in the roster", id)
	}
	if s.round == RoundDone {
		return nil, s.err
	}
	// A client Deliver refused is dropped already, but the round it was
	// the last to answer is still open: end it here.
	s.drop(i)
	if !s.complete() {
		return nil, nil
	}
	return s.advance()
}

// EndRound ends the current round at its deadline: clients that have not
// answered are dropped. If at least t clients remain, it returns the next
// round's messages; at the last round it computes the result. Otherwise the
// session aborts with ErrTooFewSurvivors.
func (s *Server) EndRound() ([]Outgoing, error) {
	if s.round == RoundDone {
		return nil, s.err
	}
	for i := range s.n {
		if s.alive[i] && !s.answered[i] {
			s.drop(i)
		}
	}
	return s.advance()
}

func (s *Server) drop(i int) {
	s.alive[i] = false
	s.answered[i] = false
	if s.partial != nil {
		s.partial[i] = nil
	}
}

func (s *Server) complete() bool {
	for i := range s.n {
		if s.alive[i] && !s.answered[i] {
			return false
		}
	}
	return true
}

func (s *Server) abort(err error) ([]Outgoing, error) {
	s.round = RoundDone
	s.err = err
	s.adverts, s.cts, s.partial, s.sum, s.sigs, s.bShares, s.sShares = nil, nil, nil, nil, nil, nil, nil
	return nil, err
}

// deliver checks and stores one client message of the current round.
func (s *Server) deliver(i uint32, msg []byte) error {
	if s.answered[i] {
		return fmt.Errorf("%w: second message for round %v", ErrProtocol, s.round)
	}
	env, err := decode(msg)
	if err != nil {
		return err
	}
	switch b := env.Body.(type) {
	case *pb.Envelope_Advertise:
		if s.round == RoundAdvertise {
			return s.onAdvertise(i, b.Advertise)
		}
	case *pb.Envelope_Shares:
		if s.round == RoundShareKeys {
			return s.onShares(i, b.Shares)
		}
	case *pb.Envelope_MaskedInput:
		if s.round == RoundMaskedInput {
			return s.onMasked(i, b.MaskedInput)
		}
	case *pb.Envelope_ConsistencySig:
		if s.round == RoundConsistency {
			return s.onConsistency(i, b.ConsistencySig)
		}
	case *pb.Envelope_Unmask:
		if s.round == RoundUnmask {
			return s.onUnmask(i, b.Unmask)
		}
	}
	return fmt.Errorf("%w: unexpected %T in round %v", ErrProtocol, env.Body, s.round)
}

func (s *Server) onAdvertise(i uint32, a *pb.Advertise) error {
	if a.Client != i {
		return fmt.Errorf("%w: advertisement names client %d", ErrProtocol, a.Client)
	}
	if !validPublicKey(a.CPk) || !validPublicKey(a.SPk) || equalKeys(a.CPk, a.SPk) || len(a.Sig) > MaxSignatureLen {
		return fmt.Errorf("%w: malformed key advertisement", ErrProtocol)
	}
	id := s.cfg.Clients[i]
	if !s.cfg.Verify(id, advertMsg(s.cfg.Session, id, a.CPk, a.SPk), a.Sig) {
		return fmt.Errorf("%w: key advertisement", ErrBadSignature)
	}
	// A client that copies another's public keys would make every honest
	// client abort: refuse it here.
	for j, o := range s.adverts {
		if o != nil && s.alive[j] && (equalKeys(o.CPk, a.CPk) || equalKeys(o.SPk, a.SPk) || equalKeys(o.CPk, a.SPk) || equalKeys(o.SPk, a.CPk)) {
			return fmt.Errorf("%w: advertisement repeats a public key of client %d", ErrProtocol, j)
		}
	}
	s.adverts[i] = &pb.Advertise{Client: i, CPk: a.CPk, SPk: a.SPk, Sig: a.Sig}
	s.answered[i] = true
	return nil
}

func (s *Server) onShares(i uint32, m *pb.Shares) error {
	if len(m.Ciphertexts) != count(s.u1)-1 {
		return fmt.Errorf("%w: %d ciphertexts, want one for each of the %d other clients", ErrProtocol, len(m.Ciphertexts), count(s.u1)-1)
	}
	seen := make([]bool, s.n)
	for _, ct := range m.Ciphertexts {
		if ct.From != i || int64(ct.To) >= int64(s.n) || !s.u1[ct.To] || ct.To == i || seen[ct.To] || len(ct.Sealed) != sealedSize {
			return fmt.Errorf("%w: ciphertext from %d to %d of %d bytes", ErrProtocol, ct.From, ct.To, len(ct.Sealed))
		}
		seen[ct.To] = true
	}
	s.cts[i] = m.Ciphertexts
	s.answered[i] = true
	return nil
}

func (s *Server) onMasked(i uint32, m *pb.MaskedInput) error {
	k := len(m.Packed) / 8
	if len(m.Packed)%8 != 0 || k == 0 || k > ChunkLen {
		return fmt.Errorf("%w: masked input chunk of %d bytes", ErrProtocol, len(m.Packed))
	}
	if int(m.Offset) != s.got[i] || s.got[i]+k > s.cfg.VectorLen {
		return fmt.Errorf("%w: masked input chunk at %d of %d elements, want offset %d of a %d-element vector", ErrProtocol, m.Offset, k, s.got[i], s.cfg.VectorLen)
	}
	if k == s.cfg.VectorLen {
		// The whole vector in one message: add it straight in.
		for j := range k {
			s.sum[j] += binary.LittleEndian.Uint64(m.Packed[8*j:])
		}
	} else {
		if s.partial[i] == nil {
			s.partial[i] = make([]uint64, s.cfg.VectorLen)
		}
		p := s.partial[i][s.got[i]:]
		for j := range k {
			p[j] = binary.LittleEndian.Uint64(m.Packed[8*j:])
		}
	}
	s.got[i] += k
	if s.got[i] == s.cfg.VectorLen {
		if p := s.partial[i]; p != nil {
			for j, x := range p {
				s.sum[j] += x
			}
			s.partial[i] = nil
		}
		s.answered[i] = true
	}
	return nil
}

func (s *Server) onConsistency(i uint32, m *pb.ConsistencySig) error {
	id := s.cfg.Clients[i]
	if len(m.Sig) > MaxSignatureLen || !s.cfg.Verify(id, consistencyMsg(s.cfg.Session, id, s.u3), m.Sig) {
		return fmt.Errorf("%w: consistency signature", ErrBadSignature)
	}
	s.sigs[i] = &pb.Signature{Client: i, Sig: m.Sig}
	s.answered[i] = true
	return nil
}

func (s *Server) onUnmask(i uint32, m *pb.Unmask) error {
	check := func(rs []*pb.Reveal, want func(uint32) bool, n int, what string) error {
		if len(rs) != n {
			return fmt.Errorf("%w: %d %s shares, want %d", ErrProtocol, len(rs), what, n)
		}
		seen := make(map[uint32]bool, len(rs))
		for _, r := range rs {
			if int64(r.Owner) >= int64(s.n) || !want(r.Owner) || seen[r.Owner] || !canonicalScalar(r.Share) {
				return fmt.Errorf("%w: %s share of client %d", ErrProtocol, what, r.Owner)
			}
			seen[r.Owner] = true
		}
		return nil
	}
	nDropped := count(s.u2) - len(s.u3)
	if err := check(m.SelfMaskShares, func(v uint32) bool { return s.u3set[v] }, len(s.u3), "self-mask"); err != nil {
		return err
	}
	if err := check(m.MaskKeyShares, func(v uint32) bool { return s.u2[v] && !s.u3set[v] }, nDropped, "mask-key"); err != nil {
		return err
	}
	for _, r := range m.SelfMaskShares {
		s.bShares[r.Owner][i] = r.Share
	}
	for _, r := range m.MaskKeyShares {
		s.sShares[r.Owner][i] = r.Share
	}
	s.answered[i] = true
	return nil
}

// advance ends the current round: it keeps the clients that answered,
// aborts if fewer than t remain, and returns the next round's messages.
func (s *Server) advance() ([]Outgoing, error) {
	for i := range s.n {
		if !s.answered[i] {
			s.drop(i)
		}
		s.answered[i] = false
	}
	if k := count(s.alive); k < s.cfg.Threshold {
		return s.abort(fmt.Errorf("%w: %d of %d clients remain after round %v, threshold %d", ErrTooFewSurvivors, k, s.n, s.round, s.cfg.Threshold))
	}
	var out []Outgoing
	var err error
	switch s.round {
	case RoundAdvertise:
		out, err = s.sendAdverts()
	case RoundShareKeys:
		out, err = s.sendShares()
	case RoundMaskedInput:
		out, err = s.sendConsistency()
	case RoundConsistency:
		out, err = s.sendUnmask()
	case RoundUnmask:
		return nil, s.finish()
	}
	if err != nil {
		return s.abort(err)
	}
	s.round++
	return out, nil
}

func (s *Server) broadcast(msg []byte) []Outgoing {
	var out []Outgoing
	for i := range s.n {
		if s.alive[i] {
			out = append(out, Outgoing{To: s.cfg.Clients[i], Msg: msg})
		}
	}
	return out
}

func (s *Server) sendAdverts() ([]Outgoing, error) {
	s.u1 = append([]bool(nil), s.alive...)
	var list pb.AdvertiseList
	for i, a := range s.adverts {
		if s.u1[i] {
			list.Adverts = append(list.Adverts, a)
		}
	}
	msg, err := encode(&pb.Envelope{Body: &pb.Envelope_AdvertiseList{AdvertiseList: &list}})
	if err != nil {
		return nil, err
	}
	s.cts = make([][]*pb.Ciphertext, s.n)
	return s.broadcast(msg), nil
}

func (s *Server) sendShares() ([]Outgoing, error) {
	s.u2 = append([]bool(nil), s.alive...)
	in := make([][]*pb.Ciphertext, s.n)
	for v, cts := range s.cts {
		if !s.u2[v] {
			continue
		}
		for _, ct := range cts {
			if s.u2[ct.To] {
				in[ct.To] = append(in[ct.To], ct)
			}
		}
	}
	s.cts = nil
	var out []Outgoing
	for u := range s.n {
		if !s.u2[u] {
			continue
		}
		msg, err := encode(&pb.Envelope{Body: &pb.Envelope_Shares{Shares: &pb.Shares{Ciphertexts: in[u]}}})
		if err != nil {
			return nil, err
		}
		out = append(out, Outgoing{To: s.cfg.Clients[u], Msg: msg})
	}
	s.partial = make([][]uint64, s.n)
	s.got = make([]int, s.n)
	s.sum = make([]uint64, s.cfg.VectorLen)
	return out, nil
}

func (s *Server) sendConsistency() ([]Outgoing, error) {
	s.u3set = append([]bool(nil), s.alive...)
	s.u3 = members(s.u3set)
	s.partial, s.got = nil, nil
	msg, err := encode(&pb.Envelope{Body: &pb.Envelope_ConsistencyRequest{ConsistencyRequest: &pb.ConsistencyRequest{Survivors: s.u3}}})
	if err != nil {
		return nil, err
	}
	s.sigs = make([]*pb.Signature, s.n)
	return s.broadcast(msg), nil
}

func (s *Server) sendUnmask() ([]Outgoing, error) {
	req := &pb.UnmaskRequest{Survivors: s.u3}
	for v := range s.n {
		if s.u2[v] && !s.u3set[v] {
			req.Dropped = append(req.Dropped, uint32(v))
		}
	}
	for i, sig := range s.sigs {
		if s.alive[i] {
			req.Sigs = append(req.Sigs, sig)
		}
	}
	s.sigs = nil
	msg, err := encode(&pb.Envelope{Body: &pb.Envelope_UnmaskRequest{UnmaskRequest: req}})
	if err != nil {
		return nil, err
	}
	s.bShares = make(map[uint32]map[uint32][]byte)
	s.sShares = make(map[uint32]map[uint32][]byte)
	for _, v := range s.u3 {
		s.bShares[v] = make(map[uint32][]byte)
	}
	for _, v := range req.Dropped {
		s.sShares[v] = make(map[uint32][]byte)
	}
	return s.broadcast(msg), nil
}

// finish reconstructs the self-mask seeds of the survivors and the mask keys
// of the dropped clients, and removes every mask from the sum.
func (s *Server) finish() error {
	t := s.cfg.Threshold
	sum := s.sum
	buf := make([]byte, prgBlock)
	for _, u := range s.u3 {
		b, err := recoverScalar(t, s.bShares[u])
		if err != nil {
			_, err = s.abort(fmt.Errorf("secagg: failed to recover the self mask of client %d: %w", u, err))
			return err
		}
		seed, err := scalarSeed(b, s.cfg.Session, labelSelfMask)
		if err != nil {
			_, err = s.abort(err)
			return err
		}
		addPRG(sum, &seed, -1, buf)
		clear(seed[:])
	}
	for v, shares := range s.sShares {
		sc, err := recoverScalar(t, shares)
		if err != nil {
			_, err = s.abort(fmt.Errorf("secagg: failed to recover the mask key of client %d: %w", v, err))
			return err
		}
		sk, err := scalarSeed(sc, s.cfg.Session, labelMaskKey)
		if err != nil {
			_, err = s.abort(err)
			return err
		}
		if !equalKeys(publicKey(&sk), s.adverts[v].SPk) {
			_, err = s.abort(fmt.Errorf("%w: shares of client %d's mask key reconstruct another key", ErrProtocol, v))
			return err
		}
		for _, u := range s.u3 {
			pair, err := pairSeed(&sk, s.adverts[u].SPk, s.cfg.Session, v, u)
			if err != nil {
				_, err = s.abort(err)
				return err
			}
			// y_u carries +PRG(s_uv) if u < v and −PRG(s_uv) if u > v.
			sign := +1
			if u < v {
				sign = -1
			}
			addPRG(sum, &pair, sign, buf)
			clear(pair[:])
		}
		clear(sk[:])
	}
	s.result = sum
	for _, u := range s.u3 {
		s.survivors = append(s.survivors, s.cfg.Clients[u])
	}
	s.round = RoundDone
	s.adverts, s.sum, s.bShares, s.sShares = nil, nil, nil, nil
	return nil
}
