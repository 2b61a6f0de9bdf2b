// Package membershiptest makes consortium roots and certificates for tests.
package membershiptest

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"xnode/node/membership"
)

// NewRoot makes an in-memory consortium root named name.
func NewRoot(t testing.TB, name string) *membership.Root {
	t.Helper()
	r, err := membership.NewRoot(name, nil)
	if err != nil {
		t.Fatalf("NewRoot(%q): %v", name, err)
	}
	return r
}

// Issue signs a certificate for id valid in [notBefore, notAfter).
func Issue(t testing.TB, r *membership.Root, id peer.ID, roles []string, notBefore, notAfter time.Time) *membership.Cert {
	t.Helper()
	c := &membership.Cert{
		PeerID:    id,
		Name:      "node-" + id.ShortString(),
		Org:       "Org of " + id.ShortString(),
		Roles:     roles,
		NotBefore: notBefore,
		NotAfter:  notAfter,
		Serial:    uint64(notBefore.UnixNano()),
	}
	if err := r.SignCert(c); err != nil {
		t.Fatalf("SignCert(%s): %v", id, err)
	}
	return c
}

// IssueNow signs a certificate for id with roles, valid from an hour ago for
// a day.
func IssueNow(t testing.TB, r *membership.Root, id peer.ID, roles ...string) *membership.Cert {
	t.Helper()
	now := time.Now()
	return Issue(t, r, id, roles, now.Add(-time.Hour), now.Add(24*time.Hour))
}

// Revocations signs a revocation list of version v revoking ids.
func Revocations(t testing.TB, r *membership.Root, v uint64, ids ...peer.ID) *membership.RevocationList {
	t.Helper()
	rl := &membership.RevocationList{Version: v, Issued: time.Now(), Revoked: []membership.Revocation{}}
	for _, id := range ids {
		rl.Revoked = append(rl.Revoked, membership.Revocation{PeerID: id, Reason: "test", RevokedAt: time.Now()})
	}
	if err := r.SignRevocations(rl); err != nil {
		t.Fatalf("SignRevocations: %v", err)
	}
	return rl
}
