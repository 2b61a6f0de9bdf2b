// Package membership is the consortium's trust root: who is a member, with
// which roles, until when, and who has been revoked.
//
// A consortium operator holds a root Ed25519 key. [Init] creates it together
// with the public consortium file; the consortium id is derived from the root
// public key, so a consortium file cannot name another key. [Admit] signs a
// membership certificate ([Cert]) binding a libp2p peer ID to a node name,
// an organisation, roles and a validity window. [Revoke] signs a new
// [RevocationList] with a higher version.
//
// What is signed is a canonical, length-prefixed byte string with a domain
// separation tag (see [Cert.SigningBytes]); the JSON files are only a
// carrier, and their decoders reject anything ambiguous (fractional seconds,
// unsorted revocations, unknown fields, oversize input).
//
// Files. A consortium directory holds:
//
//	root.key            root private key, PEM PKCS #8, mode 0600
//	consortium.json     public: id, name, root public key
//	revocations.json    current signed revocation list
//	serial              last certificate serial issued
//	members/<peer ID>/  what to copy into that node's data dir:
//	    membership.json, consortium.json, revocations.json
//
// A node's data directory holds consortium.json, membership.json and
// (optionally) revocations.json; [LoadNode] reads them.
package membership

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	crypto_pb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Roles a certificate may grant. Each protocol checks the remote peer's role.
const (
	// RolePSI allows taking part in ECDH-PSI (overlap, match).
	RolePSI = "psi"
	// RoleRiskList allows serving a labeled-PSI risk list to others.
	RoleRiskList = "risk-list"
	// RoleRiskCheck allows querying peers' risk lists (labeled PSI).
	RoleRiskCheck = "risk-check"
	// RoleSecAgg allows taking part in secure aggregation.
	RoleSecAgg = "secagg"
)

// DefaultRoles returns the roles that allow every built-in protocol.
func DefaultRoles() []string {
	return []string{RolePSI, RoleRiskCheck, RoleRiskList, RoleSecAgg}
}

// Errors from verification. Verify wraps exactly one of them.
var (
	// ErrWrongConsortium: the certificate or list names another consortium.
	ErrWrongConsortium = errors.New("membership: certificate of another consortium")
	// ErrBadSignature: the signature does not verify under the root key.
	ErrBadSignature = errors.New("membership: bad signature")
	// ErrExpired: now is after the certificate's expiry.
	ErrExpired = errors.New("membership: certificate expired")
	// ErrNotYetValid: now is before the certificate's not-before time.
	ErrNotYetValid = errors.New("membership: certificate not yet valid")
	// ErrRevoked: the certificate's peer is on the revocation list.
	ErrRevoked = errors.New("membership: peer revoked")
	// ErrWrongPeer: the certificate names a different peer ID.
	ErrWrongPeer = errors.New("membership: certificate names another peer")
	// ErrMalformed: a file or message does not decode to a well-formed
	// certificate, revocation list or consortium.
	ErrMalformed = errors.New("membership: malformed")
	// ErrStaleRevocations: a revocation list older than the one in force.
	ErrStaleRevocations = errors.New("membership: revocation list older than the current one")
)

const (
	certDomain        = "xnode/membership/cert/v1"
	revocationsDomain = "xnode/membership/revocations/v1"
	consortiumDomain  = "xnode/membership/consortium-id/v1"

	// certFormat is the only certificate format version.
	certFormat = 1

	maxNameLen   = 256
	maxRoleLen   = 64
	maxRoles     = 32
	maxReasonLen = 1024
	// MaxCertSize caps an encoded certificate, in bytes.
	MaxCertSize = 16 << 10
	// MaxRevocationsSize caps an encoded revocation list, in bytes.
	MaxRevocationsSize = 8 << 20
)

var roleRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Consortium is the public description of a consortium.
type Consortium struct {
	// ID is derived from RootKey by DeriveID.
	ID      string
	Name    string
	RootKey ed25519.PublicKey
}

// DeriveID returns the consortium id for a root public key: "xc-" and 32
// base32 characters of a domain-separated SHA-256 of the key.
func DeriveID(root ed25519.PublicKey) string {
	h := sha256.New()
	h.Write([]byte(consortiumDomain))
	h.Write(root)
	sum := h.Sum(nil)
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20])
	return "xc-" + strings.ToLower(enc)
}

// NewConsortium describes the consortium of a root public key.
func NewConsortium(name string, root ed25519.PublicKey) (*Consortium, error) {
	c := &Consortium{ID: DeriveID(root), Name: name, RootKey: root}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Consortium) validate() error {
	if len(c.RootKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: root key of %d bytes", ErrMalformed, len(c.RootKey))
	}
	if c.ID != DeriveID(c.RootKey) {
		return fmt.Errorf("%w: consortium id %q does not match its root key", ErrMalformed, c.ID)
	}
	if c.Name == "" || len(c.Name) > maxNameLen {
		return fmt.Errorf("%w: consortium name must be 1..%d bytes", ErrMalformed, maxNameLen)
	}
	return nil
}

// Cert is a membership certificate signed by the consortium root.
type Cert struct {
	ConsortiumID string
	PeerID       peer.ID
	// Name is the node's name within the consortium.
	Name string
	// Org is the member organisation that runs the node.
	Org   string
	Roles []string
	// NotBefore and NotAfter bound the validity, whole seconds, UTC.
	NotBefore time.Time
	NotAfter  time.Time
	Serial    uint64
	Signature []byte
}

// HasRole reports whether the certificate grants role. The empty role is
// held by every member.
func (c *Cert) HasRole(role string) bool {
	return role == "" || slices.Contains(c.Roles, role)
}

// ValidAt checks the validity window alone: it returns an error wrapping
// ErrNotYetValid or ErrExpired, or nil.
func (c *Cert) ValidAt(now time.Time) error {
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%w: valid from %s", ErrNotYetValid, c.NotBefore.Format(time.RFC3339))
	}
	if !now.Before(c.NotAfter) {
		return fmt.Errorf("%w: at %s", ErrExpired, c.NotAfter.Format(time.RFC3339))
	}
	return nil
}

func (c *Cert) String() string {
	return fmt.Sprintf("cert{%s %q org=%q roles=%v serial=%d}", c.PeerID, c.Name, c.Org, c.Roles, c.Serial)
}

func (c *Cert) validate() error {
	if c.ConsortiumID == "" || len(c.ConsortiumID) > maxNameLen {
		return fmt.Errorf("%w: consortium id", ErrMalformed)
	}
	if err := validatePeerID(c.PeerID); err != nil {
		return err
	}
	if c.Name == "" || len(c.Name) > maxNameLen || len(c.Org) > maxNameLen {
		return fmt.Errorf("%w: name must be 1..%d bytes, org at most %d", ErrMalformed, maxNameLen, maxNameLen)
	}
	if err := validateRoles(c.Roles); err != nil {
		return err
	}
	if !wholeSecond(c.NotBefore) || !wholeSecond(c.NotAfter) {
		return fmt.Errorf("%w: validity times must be whole seconds", ErrMalformed)
	}
	if !c.NotAfter.After(c.NotBefore) {
		return fmt.Errorf("%w: expiry not after not-before", ErrMalformed)
	}
	return nil
}

// validatePeerID accepts only peer IDs that embed an Ed25519 public key, the
// only kind of node key xnode uses.
func validatePeerID(id peer.ID) error {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: peer id %q: %v", ErrMalformed, id, err)
	}
	if pub.Type() != crypto_pb.KeyType_Ed25519 {
		return fmt.Errorf("%w: peer id %s is not an Ed25519 key", ErrMalformed, id)
	}
	return nil
}

func validateRoles(roles []string) error {
	if len(roles) > maxRoles {
		return fmt.Errorf("%w: more than %d roles", ErrMalformed, maxRoles)
	}
	for i, r := range roles {
		if len(r) > maxRoleLen || !roleRE.MatchString(r) {
			return fmt.Errorf("%w: role %q (want lower-case letters, digits, '-')", ErrMalformed, r)
		}
		if i > 0 && roles[i-1] >= r {
			return fmt.Errorf("%w: roles must be sorted and unique", ErrMalformed)
		}
	}
	return nil
}

// NormalizeRoles sorts and de-duplicates roles, as a certificate needs them.
func NormalizeRoles(roles []string) []string {
	out := slices.Clone(roles)
	slices.Sort(out)
	return slices.Compact(out)
}

func wholeSecond(t time.Time) bool { return t.Nanosecond() == 0 }

// Revocation names one revoked peer.
type Revocation struct {
	PeerID    peer.ID
	Reason    string
	RevokedAt time.Time
}

// RevocationList is the signed list of revoked peers. Version only grows.
type RevocationList struct {
	ConsortiumID string
	Version      uint64
	Issued       time.Time
	// Revoked is sorted by peer ID, one entry per peer.
	Revoked   []Revocation
	Signature []byte
}

// IsRevoked reports whether p is on the list. A nil list revokes no one.
func (rl *RevocationList) IsRevoked(p peer.ID) bool {
	if rl == nil {
		return false
	}
	_, found := slices.BinarySearchFunc(rl.Revoked, p, func(r Revocation, p peer.ID) int {
		return strings.Compare(string(r.PeerID), string(p))
	})
	return found
}

// Verify checks that the list belongs to consortium c and is signed by its
// root. It wraps ErrWrongConsortium, ErrBadSignature or ErrMalformed.
func (rl *RevocationList) Verify(c *Consortium) error {
	if rl.ConsortiumID != c.ID {
		return fmt.Errorf("revocation list: %w: %q, want %q", ErrWrongConsortium, rl.ConsortiumID, c.ID)
	}
	if err := rl.validate(); err != nil {
		return err
	}
	if !ed25519.Verify(c.RootKey, rl.SigningBytes(), rl.Signature) {
		return fmt.Errorf("revocation list: %w", ErrBadSignature)
	}
	return nil
}

func (rl *RevocationList) validate() error {
	if rl.ConsortiumID == "" || len(rl.ConsortiumID) > maxNameLen {
		return fmt.Errorf("%w: consortium id", ErrMalformed)
	}
	if !wholeSecond(rl.Issued) {
		return fmt.Errorf("%w: issued time must be whole seconds", ErrMalformed)
	}
	for i, r := range rl.Revoked {
		if err := validatePeerID(r.PeerID); err != nil {
			return err
		}
		if len(r.Reason) > maxReasonLen || !wholeSecond(r.RevokedAt) {
			return fmt.Errorf("%w: revocation of %s", ErrMalformed, r.PeerID)
		}
		if i > 0 && string(rl.Revoked[i-1].PeerID) >= string(r.PeerID) {
			return fmt.Errorf("%w: revocations must be sorted by peer id and unique", ErrMalformed)
		}
	}
	return nil
}

// Verify checks a certificate against consortium c at time now and the
// revocation list rl (nil: none). It returns nil or an error wrapping one of
// ErrWrongConsortium, ErrMalformed, ErrBadSignature, ErrNotYetValid,
// ErrExpired or ErrRevoked (or the list's own error if rl does not verify).
func Verify(cert *Cert, c *Consortium, now time.Time, rl *RevocationList) error {
	if cert.ConsortiumID != c.ID {
		return fmt.Errorf("%w: %q, want %q", ErrWrongConsortium, cert.ConsortiumID, c.ID)
	}
	if err := cert.validate(); err != nil {
		return err
	}
	if !ed25519.Verify(c.RootKey, cert.SigningBytes(), cert.Signature) {
		return ErrBadSignature
	}
	if err := cert.ValidAt(now); err != nil {
		return err
	}
	if rl != nil {
		if err := rl.Verify(c); err != nil {
			return err
		}
		if rl.IsRevoked(cert.PeerID) {
			return fmt.Errorf("%w: %s", ErrRevoked, cert.PeerID)
		}
	}
	return nil
}

// VerifyPeer is Verify plus a check that the certificate names remote,
// the peer ID the transport authenticated (else ErrWrongPeer).
func VerifyPeer(cert *Cert, c *Consortium, remote peer.ID, now time.Time, rl *RevocationList) error {
	if cert.PeerID != remote {
		return fmt.Errorf("%w: names %s, presented by %s", ErrWrongPeer, cert.PeerID, remote)
	}
	return Verify(cert, c, now, rl)
}
