package membership_test

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"xnode/node/identity"
	"xnode/node/membership"
	"xnode/node/membership/membershiptest"
)

func newPeer(t testing.TB) peer.ID {
	t.Helper()
	id, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return id.ID()
}

func TestVerify(t *testing.T) {
	root := membershiptest.NewRoot(t, "pilot")
	other := membershiptest.NewRoot(t, "other")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p, q := newPeer(t), newPeer(t)
	valid := func() *membership.Cert {
		return membershiptest.Issue(t, root, p, membership.DefaultRoles(), now.Add(-time.Hour), now.Add(time.Hour))
	}
	// A forgery: names the right consortium but is signed by another key.
	forged := valid()
	forged.Signature = ed25519.Sign(mustKey(t), forged.SigningBytes())
	tests := []struct {
		name   string
		cert   *membership.Cert
		remote peer.ID
		rl     *membership.RevocationList
		at     time.Time
		want   error
	}{
		{"valid", valid(), p, nil, now, nil},
		{"valid with list", valid(), p, membershiptest.Revocations(t, root, 2, q), now, nil},
		{"other consortium", membershiptest.Issue(t, other, p, nil, now.Add(-time.Hour), now.Add(time.Hour)), p, nil, now, membership.ErrWrongConsortium},
		{"forged signature", forged, p, nil, now, membership.ErrBadSignature},
		{"expired", valid(), p, nil, now.Add(time.Hour), membership.ErrExpired},
		{"not yet valid", valid(), p, nil, now.Add(-2 * time.Hour), membership.ErrNotYetValid},
		{"revoked", valid(), p, membershiptest.Revocations(t, root, 2, q, p), now, membership.ErrRevoked},
		{"wrong peer", valid(), q, nil, now, membership.ErrWrongPeer},
		{"list of other consortium", valid(), p, membershiptest.Revocations(t, other, 2), now, membership.ErrWrongConsortium},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := membership.VerifyPeer(tt.cert, root.Consortium, tt.remote, tt.at, tt.rl)
			if tt.want == nil && err != nil {
				t.Fatalf("VerifyPeer() = %v, want nil", err)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyPeer() = %v, want %v", err, tt.want)
			}
		})
	}
}

func mustKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Every field of a certificate is covered by its signature.
func TestCertSignatureCoversEveryField(t *testing.T) {
	root := membershiptest.NewRoot(t, "pilot")
	now := time.Now().Truncate(time.Second)
	p := newPeer(t)
	mutations := map[string]func(c *membership.Cert){
		"ConsortiumID": func(c *membership.Cert) { c.ConsortiumID = membership.DeriveID(make([]byte, 32)) },
		"PeerID":       func(c *membership.Cert) { c.PeerID = newPeer(t) },
		"Name":         func(c *membership.Cert) { c.Name += "x" },
		"Org":          func(c *membership.Cert) { c.Org += "x" },
		"Roles":        func(c *membership.Cert) { c.Roles = c.Roles[:1] },
		"NotBefore":    func(c *membership.Cert) { c.NotBefore = c.NotBefore.Add(-time.Second) },
		"NotAfter":     func(c *membership.Cert) { c.NotAfter = c.NotAfter.Add(time.Second) },
		"Serial":       func(c *membership.Cert) { c.Serial++ },
		"Signature":    func(c *membership.Cert) { c.Signature[0] ^= 1 },
	}
	if n := reflect.TypeFor[membership.Cert]().NumField(); n != len(mutations) {
		t.Fatalf("Cert has %d fields, test mutates %d: cover the new field", n, len(mutations))
	}
	for field, mutate := range mutations {
		c := membershiptest.Issue(t, root, p, membership.DefaultRoles(), now.Add(-time.Hour), now.Add(time.Hour))
		before := c.SigningBytes()
		c.Signature = slices.Clone(c.Signature)
		mutate(c)
		if field != "Signature" && string(c.SigningBytes()) == string(before) {
			t.Errorf("changing %s leaves SigningBytes unchanged", field)
		}
		// Verify with the signature's own consortium so that a changed
		// ConsortiumID is checked by the signature too.
		forged := &membership.Consortium{ID: c.ConsortiumID, Name: "x", RootKey: root.Consortium.RootKey}
		if err := membership.Verify(c, forged, now, nil); !errors.Is(err, membership.ErrBadSignature) {
			t.Errorf("after changing %s, Verify() = %v, want ErrBadSignature", field, err)
		}
	}
}

func TestRevocationSignatureCoversEveryField(t *testing.T) {
	root := membershiptest.NewRoot(t, "pilot")
	p, q := newPeer(t), newPeer(t)
	mutations := map[string]func(rl *membership.RevocationList){
		"ConsortiumID": nil, // checked against the consortium before the signature
		"Version":      func(rl *membership.RevocationList) { rl.Version++ },
		"Issued":       func(rl *membership.RevocationList) { rl.Issued = rl.Issued.Add(time.Second) },
		"Revoked":      func(rl *membership.RevocationList) { rl.Revoked = rl.Revoked[:1] },
		"Signature":    func(rl *membership.RevocationList) { rl.Signature[0] ^= 1 },
	}
	if n := reflect.TypeFor[membership.RevocationList]().NumField(); n != len(mutations) {
		t.Fatalf("RevocationList has %d fields, test mutates %d", n, len(mutations))
	}
	entry := map[string]func(r *membership.Revocation){
		"PeerID":    func(r *membership.Revocation) { r.PeerID = newPeer(t) },
		"Reason":    func(r *membership.Revocation) { r.Reason += "x" },
		"RevokedAt": func(r *membership.Revocation) { r.RevokedAt = r.RevokedAt.Add(time.Second) },
	}
	if n := reflect.TypeFor[membership.Revocation]().NumField(); n != len(entry) {
		t.Fatalf("Revocation has %d fields, test mutates %d", n, len(entry))
	}
	for name, m := range entry {
		mutations["Revoked."+name] = func(rl *membership.RevocationList) { m(&rl.Revoked[0]) }
	}
	for field, mutate := range mutations {
		if mutate == nil {
			continue
		}
		rl := membershiptest.Revocations(t, root, 3, p, q)
		if err := rl.Verify(root.Consortium); err != nil {
			t.Fatalf("fresh list: Verify() = %v", err)
		}
		rl.Signature = slices.Clone(rl.Signature)
		rl.Revoked = slices.Clone(rl.Revoked)
		mutate(rl)
		if err := rl.Verify(root.Consortium); !errors.Is(err, membership.ErrBadSignature) && !errors.Is(err, membership.ErrMalformed) {
			t.Errorf("after changing %s, Verify() = %v, want ErrBadSignature", field, err)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	root := membershiptest.NewRoot(t, "pilot")
	p := newPeer(t)
	c := membershiptest.IssueNow(t, root, p, membership.RoleSecAgg, membership.RolePSI)
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := membership.ParseCert(data)
	if err != nil {
		t.Fatalf("ParseCert(Marshal()) = %v", err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("ParseCert(Marshal(c)) = %+v, want %+v", got, c)
	}
	if err := membership.VerifyPeer(got, root.Consortium, p, time.Now(), nil); err != nil {
		t.Errorf("decoded cert: VerifyPeer() = %v", err)
	}
	if !got.HasRole(membership.RolePSI) || got.HasRole(membership.RoleRiskList) || !got.HasRole("") {
		t.Errorf("HasRole wrong for roles %v", got.Roles)
	}

	cdata, _ := root.Consortium.Marshal()
	gotC, err := membership.ParseConsortium(cdata)
	if err != nil || !reflect.DeepEqual(gotC, root.Consortium) {
		t.Errorf("ParseConsortium(Marshal()) = %+v, %v; want %+v", gotC, err, root.Consortium)
	}
	other := membershiptest.NewRoot(t, "other")
	bad := strings.Replace(string(cdata), root.Consortium.ID, other.Consortium.ID, 1)
	if _, err := membership.ParseConsortium([]byte(bad)); !errors.Is(err, membership.ErrMalformed) {
		t.Errorf("ParseConsortium(id of another key) = %v, want ErrMalformed", err)
	}
}

func TestParseCertRejectsAmbiguity(t *testing.T) {
	root := membershiptest.NewRoot(t, "pilot")
	c := membershiptest.IssueNow(t, root, newPeer(t), membership.RolePSI)
	data, _ := c.Marshal()
	nb := c.NotBefore.Format(time.RFC3339)
	cases := map[string]string{
		"unknown field":      strings.Replace(string(data), `"format"`, `"extra": 1, "format"`, 1),
		"fractional seconds": strings.Replace(string(data), nb, strings.TrimSuffix(nb, "Z")+".5Z", 1),
		"trailing data":      string(data) + "{}",
		"unsorted roles":     strings.Replace(string(data), `"psi"`, `"psi", "abc"`, 1),
		"bad peer id":        strings.Replace(string(data), c.PeerID.String(), "12D3KooWnope", 1),
	}
	for name, in := range cases {
		if _, err := membership.ParseCert([]byte(in)); !errors.Is(err, membership.ErrMalformed) {
			t.Errorf("ParseCert(%s) = %v, want ErrMalformed", name, err)
		}
	}
}

func TestConsortiumFiles(t *testing.T) {
	cdir := filepath.Join(t.TempDir(), "consortium")
	cons, err := membership.Init(cdir, "pilot")
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	if st, err := os.Stat(filepath.Join(cdir, membership.RootKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("root key stat = %v, %v; want mode 0600", st, err)
	}
	if _, err := membership.Init(cdir, "again"); err == nil {
		t.Fatalf("Init twice in one dir succeeded, want refusal")
	}
	p, q := newPeer(t), newPeer(t)
	cert, err := membership.Admit(cdir, p, "node-a", "Bank A", []string{membership.RolePSI, membership.RolePSI, membership.RoleSecAgg}, time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	if !slices.Equal(cert.Roles, []string{membership.RolePSI, membership.RoleSecAgg}) {
		t.Errorf("Admit roles = %v, want sorted unique", cert.Roles)
	}
	cert2, err := membership.Admit(cdir, q, "node-b", "Bank B", membership.DefaultRoles(), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatalf("Admit(second): %v", err)
	}
	if cert2.Serial <= cert.Serial {
		t.Errorf("serials %d then %d, want increasing", cert.Serial, cert2.Serial)
	}
	node, err := membership.LoadNode(filepath.Join(cdir, membership.MembersDir, p.String()))
	if err != nil {
		t.Fatalf("LoadNode(member dir): %v", err)
	}
	if node.Consortium.ID != cons.ID || node.Revocations == nil || node.Revocations.Version != 1 {
		t.Errorf("LoadNode = %+v, want consortium %s and revocations v1", node, cons.ID)
	}
	if err := membership.VerifyPeer(node.Cert, node.Consortium, p, time.Now(), node.Revocations); err != nil {
		t.Errorf("admitted cert: VerifyPeer() = %v", err)
	}

	rl, err := membership.Revoke(cdir, p, "left the consortium")
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if rl.Version != 2 || !rl.IsRevoked(p) || rl.IsRevoked(q) {
		t.Errorf("Revoke gave version %d revoking %v", rl.Version, rl.Revoked)
	}
	again, err := membership.Revoke(cdir, p, "twice")
	if err != nil || again.Version != 2 {
		t.Errorf("Revoke twice = v%d, %v; want v2 unchanged", again.Version, err)
	}
	rl3, err := membership.Revoke(cdir, q, "")
	if err != nil || rl3.Version != 3 || !rl3.IsRevoked(p) || !rl3.IsRevoked(q) {
		t.Fatalf("Revoke(q) = %+v, %v", rl3, err)
	}
	loaded, err := membership.LoadRevocations(filepath.Join(cdir, membership.RevocationsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := membership.Verify(node.Cert, cons, time.Now(), loaded); !errors.Is(err, membership.ErrRevoked) {
		t.Errorf("Verify(revoked) = %v, want ErrRevoked", err)
	}
}
