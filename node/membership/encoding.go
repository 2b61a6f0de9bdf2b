package membership

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// signing bytes: a domain tag, then every field in a fixed order; strings
// and byte strings are uvarint-length-prefixed, integers are 8-byte
// big-endian, times are Unix seconds, lists are a count then their items.
type canon struct{ b []byte }

func (w *canon) str(s string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}
func (w *canon) u64(v uint64)       { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *canon) time(t time.Time)   { w.u64(uint64(t.Unix())) }
func (w *canon) count(n int)        { w.u64(uint64(n)) }
func newCanon(domain string) *canon { w := &canon{}; w.str(domain); return w }

// SigningBytes returns the canonical bytes the root signs for c: every field
// but the signature, each length-prefixed, after a domain separation tag.
func (c *Cert) SigningBytes() []byte {
	w := newCanon(certDomain)
	w.u64(certFormat)
	w.str(c.ConsortiumID)
	w.str(string(c.PeerID))
	w.str(c.Name)
	w.str(c.Org)
	w.count(len(c.Roles))
	for _, r := range c.Roles {
		w.str(r)
	}
	w.time(c.NotBefore)
	w.time(c.NotAfter)
	w.u64(c.Serial)
	return w.b
}

// SigningBytes returns the canonical bytes the root signs for rl.
func (rl *RevocationList) SigningBytes() []byte {
	w := newCanon(revocationsDomain)
	w.str(rl.ConsortiumID)
	w.u64(rl.Version)
	w.time(rl.Issued)
	w.count(len(rl.Revoked))
	for _, r := range rl.Revoked {
		w.str(string(r.PeerID))
		w.str(r.Reason)
		w.time(r.RevokedAt)
	}
	return w.b
}

type certJSON struct {
	Format     int      `json:"format"`
	Consortium string   `json:"consortium"`
	PeerID     string   `json:"peer_id"`
	Name       string   `json:"name"`
	Org        string   `json:"org"`
	Roles      []string `json:"roles"`
	NotBefore  string   `json:"not_before"`
	NotAfter   string   `json:"not_after"`
	Serial     uint64   `json:"serial"`
	Signature  []byte   `json:"signature"`
}

// Marshal encodes the certificate as indented JSON (the membership.json
// file and the hello message).
func (c *Cert) Marshal() ([]byte, error) {
	roles := c.Roles
	if roles == nil {
		roles = []string{}
	}
	return json.MarshalIndent(certJSON{
		Format:     certFormat,
		Consortium: c.ConsortiumID,
		PeerID:     c.PeerID.String(),
		Name:       c.Name,
		Org:        c.Org,
		Roles:      roles,
		NotBefore:  formatTime(c.NotBefore),
		NotAfter:   formatTime(c.NotAfter),
		Serial:     c.Serial,
		Signature:  c.Signature,
	}, "", "  ")
}

// ParseCert decodes a certificate. It checks its form, not its signature:
// call Verify for that.
func ParseCert(data []byte) (*Cert, error) {
	if len(data) > MaxCertSize {
		return nil, fmt.Errorf("%w: certificate of %d bytes", ErrMalformed, len(data))
	}
	var j certJSON
	if err := decodeStrict(data, &j); err != nil {
		return nil, fmt.Errorf("%w: certificate: %v", ErrMalformed, err)
	}
	if j.Format != certFormat {
		return nil, fmt.Errorf("%w: certificate format %d, want %d", ErrMalformed, j.Format, certFormat)
	}
	id, err := peer.Decode(j.PeerID)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate peer id: %v", ErrMalformed, err)
	}
	nb, err := parseTime(j.NotBefore)
	if err != nil {
		return nil, err
	}
	na, err := parseTime(j.NotAfter)
	if err != nil {
		return nil, err
	}
	if len(j.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: certificate signature of %d bytes", ErrMalformed, len(j.Signature))
	}
	c := &Cert{
		ConsortiumID: j.Consortium,
		PeerID:       id,
		Name:         j.Name,
		Org:          j.Org,
		Roles:        j.Roles,
		NotBefore:    nb,
		NotAfter:     na,
		Serial:       j.Serial,
		Signature:    j.Signature,
	}
	if c.Roles == nil {
		c.Roles = []string{}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

type revocationJSON struct {
	PeerID    string `json:"peer_id"`
	Reason    string `json:"reason"`
	RevokedAt string `json:"revoked_at"`
}

type revocationListJSON struct {
	Consortium string           `json:"consortium"`
	Version    uint64           `json:"version"`
	Issued     string           `json:"issued"`
	Revoked    []revocationJSON `json:"revoked"`
	Signature  []byte           `json:"signature"`
}

// Marshal encodes the list as indented JSON (revocations.json).
func (rl *RevocationList) Marshal() ([]byte, error) {
	j := revocationListJSON{
		Consortium: rl.ConsortiumID,
		Version:    rl.Version,
		Issued:     formatTime(rl.Issued),
		Revoked:    make([]revocationJSON, len(rl.Revoked)),
		Signature:  rl.Signature,
	}
	for i, r := range rl.Revoked {
		j.Revoked[i] = revocationJSON{PeerID: r.PeerID.String(), Reason: r.Reason, RevokedAt: formatTime(r.RevokedAt)}
	}
	return json.MarshalIndent(j, "", "  ")
}

// ParseRevocationList decodes a revocation list. It checks its form, not
// its signature: call Verify for that.
func ParseRevocationList(data []byte) (*RevocationList, error) {
	if len(data) > MaxRevocationsSize {
		return nil, fmt.Errorf("%w: revocation list of %d bytes", ErrMalformed, len(data))
	}
	var j revocationListJSON
	if err := decodeStrict(data, &j); err != nil {
		return nil, fmt.Errorf("%w: revocation list: %v", ErrMalformed, err)
	}
	issued, err := parseTime(j.Issued)
	if err != nil {
		return nil, err
	}
	if len(j.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: revocation list signature of %d bytes", ErrMalformed, len(j.Signature))
	}
	rl := &RevocationList{
		ConsortiumID: j.Consortium,
		Version:      j.Version,
		Issued:       issued,
		Revoked:      make([]Revocation, len(j.Revoked)),
		Signature:    j.Signature,
	}
	for i, r := range j.Revoked {
		id, err := peer.Decode(r.PeerID)
		if err != nil {
			return nil, fmt.Errorf("%w: revoked peer id: %v", ErrMalformed, err)
		}
		at, err := parseTime(r.RevokedAt)
		if err != nil {
			return nil, err
		}
		rl.Revoked[i] = Revocation{PeerID: id, Reason: r.Reason, RevokedAt: at}
	}
	if err := rl.validate(); err != nil {
		return nil, err
	}
	return rl, nil
}

type consortiumJSON struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	RootKey []byte `json:"root_key"`
}

// Marshal encodes the consortium as indented JSON (consortium.json).
func (c *Consortium) Marshal() ([]byte, error) {
	return json.MarshalIndent(consortiumJSON{ID: c.ID, Name: c.Name, RootKey: c.RootKey}, "", "  ")
}

// ParseConsortium decodes a consortium file and checks that its id matches
// its root key.
func ParseConsortium(data []byte) (*Consortium, error) {
	if len(data) > MaxCertSize {
		return nil, fmt.Errorf("%w: consortium file of %d bytes", ErrMalformed, len(data))
	}
	var j consortiumJSON
	if err := decodeStrict(data, &j); err != nil {
		return nil, fmt.Errorf("%w: consortium: %v", ErrMalformed, err)
	}
	c := &Consortium{ID: j.ID, Name: j.Name, RootKey: ed25519.PublicKey(j.RootKey)}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: time %q: %v", ErrMalformed, s, err)
	}
	t = t.UTC()
	if !wholeSecond(t) {
		return time.Time{}, fmt.Errorf("%w: time %q has fractional seconds", ErrMalformed, s)
	}
	return t, nil
}
