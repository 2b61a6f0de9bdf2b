package membership_test

import (
	"bytes"
	"reflect"
	"testing"

	"xnode/node/membership"
	"xnode/node/membership/membershiptest"
)

func FuzzParseCert(f *testing.F) {
	root := membershiptest.NewRoot(f, "pilot")
	c := membershiptest.IssueNow(f, root, newPeer(f), membership.DefaultRoles()...)
	data, _ := c.Marshal()
	f.Add(data)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":1,"roles":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := membership.ParseCert(data)
		if err != nil {
			return
		}
		again, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal(ParseCert(x)) = %v", err)
		}
		c2, err := membership.ParseCert(again)
		if err != nil {
			t.Fatalf("ParseCert(Marshal(ParseCert(x))) = %v", err)
		}
		if !reflect.DeepEqual(c, c2) || !bytes.Equal(c.SigningBytes(), c2.SigningBytes()) {
			t.Fatalf("round trip changed the cert: %+v != %+v", c, c2)
		}
	})
}

func FuzzParseRevocationList(f *testing.F) {
	root := membershiptest.NewRoot(f, "pilot")
	rl := membershiptest.Revocations(f, root, 7, newPeer(f), newPeer(f))
	data, _ := rl.Marshal()
	f.Add(data)
	f.Add([]byte(`{"revoked":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rl, err := membership.ParseRevocationList(data)
		if err != nil {
			return
		}
		again, err := rl.Marshal()
		if err != nil {
			t.Fatalf("Marshal(ParseRevocationList(x)) = %v", err)
		}
		rl2, err := membership.ParseRevocationList(again)
		if err != nil {
			t.Fatalf("ParseRevocationList(Marshal(...)) = %v", err)
		}
		if !reflect.DeepEqual(rl, rl2) || !bytes.Equal(rl.SigningBytes(), rl2.SigningBytes()) {
			t.Fatalf("round trip changed the list")
		}
		for _, r := range rl.Revoked {
			if !rl.IsRevoked(r.PeerID) {
				t.Fatalf("IsRevoked(%s) = false for a listed peer", r.PeerID)
			}
		}
	})
}

func FuzzParseConsortium(f *testing.F) {
	root := membershiptest.NewRoot(f, "pilot")
	data, _ := root.Consortium.Marshal()
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := membership.ParseConsortium(data)
		if err != nil {
			return
		}
		if c.ID != membership.DeriveID(c.RootKey) {
			t.Fatalf("ParseConsortium accepted id %q for another key", c.ID)
		}
	})
}
