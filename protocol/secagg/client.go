package secagg

import (
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/group"

	"xnode/protocol/secagg/pb"
)

// ClientConfig configures one client: the session's Config plus who the
// client is.
type ClientConfig struct {
	Config
	// Self is this client's id; it must be in Config.Clients.
	Self ClientID
	// Signer signs with Self's identity key. Required.
	Signer Signer
}

// Client is one participant of a session. It talks only to the server: it
// sends what Start and Deliver return, in order, and hands Deliver every
// message the server sends it. It is not safe for concurrent use.
type Client struct {
	cfg    Config
	self   uint32
	signer Signer
	input  []uint64

	want Round // the round whose server message the client awaits
	err  error // sticky

	cSK, sSK seed         // X25519 private keys (s_sk derived from sScalar)
	sScalar  group.Scalar // shared secret behind s_sk
	bScalar  group.Scalar // shared secret behind the self-mask seed
	cPK, sPK []byte

	peers []peerKeys // by roster index; set for U1
	u1    []bool
	u2    []bool
	held  map[uint32]heldShares // shares this client holds, by owner (U2)
	u3    []uint32              // the survivor set this client signed
}

type peerKeys struct{ cpk, spk []byte }

// heldShares is this client's share (at its own x-coordinate) of an owner's
// mask key seed and self-mask seed, as canonical scalar encodings.
type heldShares struct{ s, b []byte }

// NewClient returns a client holding input, a vector of cfg.VectorLen
// elements mod 2^64 (see the package doc for the encoding of decimals and
// negatives). The client keeps its own copy of input.
func NewClient(cfg ClientConfig, input []uint64) (*Client, error) {
	c, idx, err := cfg.Config.check()
	if err != nil {
		return nil, err
	}
	self, ok := idx[cfg.Self]
	if !ok {
		return nil, fmt.Errorf("secagg: client %q is not in the roster", cfg.Self)
	}
	if cfg.Signer == nil {
		return nil, errors.New("secagg: no signer configured")
	}
	if len(input) != c.VectorLen {
		return nil, fmt.Errorf("secagg: input of %d elements, session wants %d", len(input), c.VectorLen)
	}
	return &Client{
		cfg:    c,
		self:   uint32(self),
		signer: cfg.Signer,
		input:  append([]uint64(nil), input...),
		want:   -1,
	}, nil
}

// Round is the round whose server message the client is waiting for, or
// RoundDone.
func (c *Client) Round() Round {
	if c.want < 0 {
		return RoundAdvertise
	}
	return c.want
}

// Done reports whether the client has finished: it sent its last message or
// failed. It then sends nothing more.
func (c *Client) Done() bool { return c.want == RoundDone }

// Err is the error that ended the client, or nil.
func (c *Client) Err() error { return c.err }

// String identifies the client without printing any secret.
func (c *Client) String() string {
	return fmt.Sprintf("secagg.Client(%s, %v)", c.cfg.Clients[c.self], c.Round())
}

func (c *Client) fail(err error) error {
	c.err = err
	c.want = RoundDone
	clear(c.cSK[:])
	clear(c.sSK[:])
	c.forgetScalars()
	c.held = nil
	clear(c.input)
	return err
}

// forgetScalars overwrites the shared secrets once their shares are out.
func (c *Client) forgetScalars() {
	for _, s := range []group.Scalar{c.sScalar, c.bScalar} {
		if s != nil {
			s.SetUint64(0)
		}
	}
	c.sScalar, c.bScalar = nil, nil
}

// Start makes the client's two key pairs and returns its signed key
// advertisement (round 0), to send to the server.
func (c *Client) Start() ([]byte, error) {
	if c.want != -1 {
		return nil, errors.New("secagg: client already started")
	}
	if _, err := io.ReadFull(c.cfg.Rand, c.cSK[:]); err != nil {
		return nil, c.fail(fmt.Errorf("secagg: failed to read randomness: %w", err))
	}
	var err error
	if c.sScalar, err = randomScalar(c.cfg.Rand, c.cfg.Session); err != nil {
		return nil, c.fail(err)
	}
	if c.bScalar, err = randomScalar(c.cfg.Rand, c.cfg.Session); err != nil {
		return nil, c.fail(err)
	}
	if c.sSK, err = scalarSeed(c.sScalar, c.cfg.Session, labelMaskKey); err != nil {
		return nil, c.fail(err)
	}
	c.cPK, c.sPK = publicKey(&c.cSK), publicKey(&c.sSK)
	sig, err := c.signer.Sign(advertMsg(c.cfg.Session, c.cfg.Clients[c.self], c.cPK, c.sPK))
	if err != nil {
		return nil, c.fail(fmt.Errorf("secagg: failed to sign key advertisement: %w", err))
	}
	msg, err := encode(&pb.Envelope{Body: &pb.Envelope_Advertise{Advertise: &pb.Advertise{
		Client: c.self, CPk: c.cPK, SPk: c.sPK, Sig: sig,
	}}})
	if err != nil {
		return nil, c.fail(err)
	}
	c.want = RoundAdvertise
	return msg, nil
}

// Deliver hands the client one message from the server and returns the
// messages to send back, in order (several for a chunked masked input, none
// at the end). Any error ends the client: it reveals nothing more.
func (c *Client) Deliver(msg []byte) ([][]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.want == RoundDone {
		return nil, c.fail(fmt.Errorf("%w: message after the client finished", ErrProtocol))
	}
	if c.want < 0 {
		return nil, c.fail(fmt.Errorf("%w: message before Start", ErrProtocol))
	}
	env, err := decode(msg)
	if err != nil {
		return nil, c.fail(err)
	}
	var out [][]byte
	switch b := env.Body.(type) {
	case *pb.Envelope_AdvertiseList:
		if c.want != RoundAdvertise {
			break
		}
		out, err = c.onAdverts(b.AdvertiseList)
		c.want = RoundShareKeys
	case *pb.Envelope_Shares:
		if c.want != RoundShareKeys {
			break
		}
		out, err = c.onShares(b.Shares)
		c.want = RoundMaskedInput
	case *pb.Envelope_ConsistencyRequest:
		if c.want != RoundMaskedInput {
			break
		}
		out, err = c.onConsistency(b.ConsistencyRequest)
		c.want = RoundConsistency
	case *pb.Envelope_UnmaskRequest:
		if c.want != RoundConsistency {
			break
		}
		out, err = c.onUnmask(b.UnmaskRequest)
		c.want = RoundDone
	}
	if out == nil && err == nil {
		err = fmt.Errorf("%w: unexpected %T while waiting for the server's %v message", ErrProtocol, env.Body, c.want)
	}
	if err != nil {
		return nil, c.fail(err)
	}
	return out, nil
}

// onAdverts checks every advertisement and returns the encrypted shares.
func (c *Client) onAdverts(m *pb.AdvertiseList) ([][]byte, error) {
	n := len(c.cfg.Clients)
	if len(m.Adverts) > n {
		return nil, fmt.Errorf("%w: %d advertisements for a roster of %d", ErrProtocol, len(m.Adverts), n)
	}
	c.peers = make([]peerKeys, n)
	c.u1 = make([]bool, n)
	seen := make(map[string]bool, 2*len(m.Adverts))
	for i, a := range m.Adverts {
		if int64(a.Client) >= int64(n) || (i > 0 && a.Client <= m.Adverts[i-1].Client) {
			return nil, fmt.Errorf("%w: advertisement for client %d out of order or outside the roster", ErrProtocol, a.Client)
		}
		if !validPublicKey(a.CPk) || !validPublicKey(a.SPk) || len(a.Sig) > MaxSignatureLen {
			return nil, fmt.Errorf("%w: malformed advertisement of client %d", ErrProtocol, a.Client)
		}
		if seen[string(a.CPk)] || seen[string(a.SPk)] || equalKeys(a.CPk, a.SPk) {
			return nil, fmt.Errorf("%w: advertisement of client %d repeats a public key", ErrProtocol, a.Client)
		}
		seen[string(a.CPk)], seen[string(a.SPk)] = true, true
		id := c.cfg.Clients[a.Client]
		if !c.cfg.Verify(id, advertMsg(c.cfg.Session, id, a.CPk, a.SPk), a.Sig) {
			return nil, fmt.Errorf("%w: key advertisement of client %q", ErrBadSignature, id)
		}
		if a.Client == c.self && (!equalKeys(a.CPk, c.cPK) || !equalKeys(a.SPk, c.sPK)) {
			return nil, fmt.Errorf("%w: the server relayed other keys for this client", ErrInconsistent)
		}
		c.peers[a.Client] = peerKeys{cpk: a.CPk, spk: a.SPk}
		c.u1[a.Client] = true
	}
	if !c.u1[c.self] {
		return nil, fmt.Errorf("%w: the server left this client out of U1", ErrInconsistent)
	}
	if k := count(c.u1); k < c.cfg.Threshold {
		return nil, fmt.Errorf("%w: %d clients advertised keys, threshold %d", ErrTooFewSurvivors, k, c.cfg.Threshold)
	}

	sShares := split(c.cfg.Rand, c.cfg.Threshold, c.sScalar, n)
	bShares := split(c.cfg.Rand, c.cfg.Threshold, c.bScalar, n)
	c.held = make(map[uint32]heldShares, n)
	var nonce [12]byte
	var cts []*pb.Ciphertext
	for v := range uint32(n) {
		if !c.u1[v] {
			continue
		}
		s, err := sShares[v].Value.MarshalBinary()
		if err != nil {
			return nil, err
		}
		b, err := bShares[v].Value.MarshalBinary()
		if err != nil {
			return nil, err
		}
		if v == c.self {
			c.held[v] = heldShares{s: s, b: b}
			continue
		}
		aead, err := shareAEAD(&c.cSK, c.peers[v].cpk, c.cfg.Session, c.self, v)
		if err != nil {
			return nil, fmt.Errorf("%w: client %d: %v", ErrProtocol, v, err)
		}
		pt := make([]byte, 0, 8+2*scalarSize)
		pt = append(pt, byte(c.self>>24), byte(c.self>>16), byte(c.self>>8), byte(c.self))
		pt = append(pt, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
		pt = append(append(pt, s...), b...)
		cts = append(cts, &pb.Ciphertext{From: c.self, To: v, Sealed: aead.Seal(nil, nonce[:], pt, nil)})
		clear(pt)
		clear(s)
		clear(b)
	}
	msg, err := encode(&pb.Envelope{Body: &pb.Envelope_Shares{Shares: &pb.Shares{Ciphertexts: cts}}})
	if err != nil {
		return nil, err
	}
	return [][]byte{msg}, nil
}

// onShares decrypts the shares addressed to this client and returns the
// masked input.
func (c *Client) onShares(m *pb.Shares) ([][]byte, error) {
	n := len(c.cfg.Clients)
	if len(m.Ciphertexts) > n {
		return nil, fmt.Errorf("%w: %d ciphertexts for a roster of %d", ErrProtocol, len(m.Ciphertexts), n)
	}
	c.u2 = make([]bool, n)
	c.u2[c.self] = true
	var nonce [12]byte
	for _, ct := range m.Ciphertexts {
		v := ct.From
		if int64(v) >= int64(n) || !c.u1[v] || v == c.self || c.u2[v] || ct.To != c.self {
			return nil, fmt.Errorf("%w: ciphertext from client %d to %d", ErrProtocol, ct.From, ct.To)
		}
		if len(ct.Sealed) != sealedSize {
			return nil, fmt.Errorf("%w: ciphertext from client %d of %d bytes", ErrProtocol, v, len(ct.Sealed))
		}
		aead, err := shareAEAD(&c.cSK, c.peers[v].cpk, c.cfg.Session, v, c.self)
		if err != nil {
			return nil, fmt.Errorf("%w: client %d: %v", ErrProtocol, v, err)
		}
		pt, err := aead.Open(nil, nonce[:], ct.Sealed, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: shares from client %d do not decrypt", ErrProtocol, v)
		}
		from := uint32(pt[0])<<24 | uint32(pt[1])<<16 | uint32(pt[2])<<8 | uint32(pt[3])
		to := uint32(pt[4])<<24 | uint32(pt[5])<<16 | uint32(pt[6])<<8 | uint32(pt[7])
		s, b := pt[8:8+scalarSize], pt[8+scalarSize:]
		if from != v || to != c.self || !canonicalScalar(s) || !canonicalScalar(b) {
			return nil, fmt.Errorf("%w: shares from client %d malformed", ErrProtocol, v)
		}
		c.held[v] = heldShares{s: s, b: b}
		c.u2[v] = true
	}
	if k := count(c.u2); k < c.cfg.Threshold {
		return nil, fmt.Errorf("%w: %d clients shared keys, threshold %d", ErrTooFewSurvivors, k, c.cfg.Threshold)
	}
	for v := range c.held {
		if !c.u2[v] {
			delete(c.held, v) // own-share entries for U1 \ U2 are never needed
		}
	}

	y := c.input
	c.input = nil
	bSeed, err := scalarSeed(c.bScalar, c.cfg.Session, labelSelfMask)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, prgBlock)
	addPRG(y, &bSeed, +1, buf)
	clear(bSeed[:])
	for v := range uint32(n) {
		if !c.u2[v] || v == c.self {
			continue
		}
		s, err := pairSeed(&c.sSK, c.peers[v].spk, c.cfg.Session, c.self, v)
		if err != nil {
			return nil, fmt.Errorf("%w: client %d: %v", ErrProtocol, v, err)
		}
		sign := -1
		if v > c.self {
			sign = +1
		}
		addPRG(y, &s, sign, buf)
		clear(s[:])
	}
	clear(c.sSK[:])
	clear(c.cSK[:])
	c.forgetScalars()
	return chunkMasked(y)
}

// chunkMasked packs a masked vector into MaskedInput messages of ChunkLen
// elements.
func chunkMasked(y []uint64) ([][]byte, error) {
	var out [][]byte
	for off := 0; off < len(y); off += ChunkLen {
		part := y[off:min(len(y), off+ChunkLen)]
		msg, err := encode(&pb.Envelope{Body: &pb.Envelope_MaskedInput{MaskedInput: &pb.MaskedInput{
			Offset: uint32(off), Packed: pack(part),
		}}})
		if err != nil {
			return nil, err
		}
		out = append(out, msg)
	}
	return out, nil
}

func canonicalScalar(b []byte) bool {
	return len(b) == scalarSize && shareGroup.NewScalar().UnmarshalBinary(b) == nil
}

// onConsistency signs the survivor set U3.
func (c *Client) onConsistency(m *pb.ConsistencyRequest) ([][]byte, error) {
	in, err := indexSet(m.Survivors, len(c.cfg.Clients))
	if err != nil {
		return nil, fmt.Errorf("%w: survivor set: %v", ErrProtocol, err)
	}
	for v, ok := range in {
		if ok && !c.u2[v] {
			return nil, fmt.Errorf("%w: survivor %d never shared its keys", ErrInconsistent, v)
		}
	}
	if !in[c.self] {
		return nil, fmt.Errorf("%w: this client is not among the survivors", ErrInconsistent)
	}
	if k := len(m.Survivors); k < c.cfg.Threshold {
		return nil, fmt.Errorf("%w: %d survivors, threshold %d", ErrTooFewSurvivors, k, c.cfg.Threshold)
	}
	c.u3 = append([]uint32(nil), m.Survivors...)
	sig, err := c.signer.Sign(consistencyMsg(c.cfg.Session, c.cfg.Clients[c.self], c.u3))
	if err != nil {
		return nil, fmt.Errorf("secagg: failed to sign the survivor set: %w", err)
	}
	msg, err := encode(&pb.Envelope{Body: &pb.Envelope_ConsistencySig{ConsistencySig: &pb.ConsistencySig{Sig: sig}}})
	if err != nil {
		return nil, err
	}
	return [][]byte{msg}, nil
}

// onUnmask checks the server's view and reveals, for each client of U2,
// exactly one share: of its self-mask seed if it survived, of its mask key if
// it dropped.
func (c *Client) onUnmask(m *pb.UnmaskRequest) ([][]byte, error) {
	n := len(c.cfg.Clients)
	if len(m.Survivors) != len(c.u3) {
		return nil, fmt.Errorf("%w: survivor set differs from the one signed", ErrInconsistent)
	}
	for i, v := range m.Survivors {
		if v != c.u3[i] {
			return nil, fmt.Errorf("%w: survivor set differs from the one signed", ErrInconsistent)
		}
	}
	survived, _ := indexSet(c.u3, n) // checked when signed
	dropped, err := indexSet(m.Dropped, n)
	if err != nil {
		return nil, fmt.Errorf("%w: dropped set: %v", ErrProtocol, err)
	}
	for v := range n {
		if dropped[v] && survived[v] {
			return nil, fmt.Errorf("%w: client %d named both survivor and dropped: refusing to reveal both its shares", ErrInconsistent, v)
		}
		if dropped[v] != (c.u2[v] && !survived[v]) {
			return nil, fmt.Errorf("%w: dropped set is not U2 minus the survivors (client %d)", ErrInconsistent, v)
		}
	}
	if len(m.Sigs) > n {
		return nil, fmt.Errorf("%w: %d signatures for a roster of %d", ErrProtocol, len(m.Sigs), n)
	}
	signed := make([]bool, n)
	for _, s := range m.Sigs {
		if int64(s.Client) >= int64(n) || !survived[s.Client] || signed[s.Client] || len(s.Sig) > MaxSignatureLen {
			return nil, fmt.Errorf("%w: consistency signature of client %d", ErrProtocol, s.Client)
		}
		id := c.cfg.Clients[s.Client]
		if !c.cfg.Verify(id, consistencyMsg(c.cfg.Session, id, c.u3), s.Sig) {
			return nil, fmt.Errorf("%w: consistency signature of client %q", ErrBadSignature, id)
		}
		signed[s.Client] = true
	}
	if k := count(signed); k < c.cfg.Threshold {
		return nil, fmt.Errorf("%w: %d clients signed the survivor set, threshold %d", ErrInconsistent, k, c.cfg.Threshold)
	}
	var out pb.Unmask
	for v := range uint32(n) {
		switch {
		case survived[v]:
			out.SelfMaskShares = append(out.SelfMaskShares, &pb.Reveal{Owner: v, Share: c.held[v].b})
		case dropped[v]:
			out.MaskKeyShares = append(out.MaskKeyShares, &pb.Reveal{Owner: v, Share: c.held[v].s})
		}
	}
	c.held = nil
	msg, err := encode(&pb.Envelope{Body: &pb.Envelope_Unmask{Unmask: &out}})
	if err != nil {
		return nil, err
	}
	return [][]byte{msg}, nil
}
