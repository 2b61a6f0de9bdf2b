package policy_test

import (
	"testing"
	"time"

	"xnode/node/policy"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// can be evaluated, with every denial naming a rule.
func FuzzParse(f *testing.F) {
	f.Add([]byte(testPolicy))
	f.Add([]byte(allowOverlap))
	f.Add([]byte("version = 1\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := policy.Parse(in)
		if err != nil {
			return
		}
		for _, req := range []policy.Request{
			{Plugin: "overlap", Dataset: "customers", Peer: policy.Peer{Name: "bank-b"}, QuerierSetSize: 5000},
			{Plugin: "match", PluginDigest: digestA, Dataset: "accounts", Peer: policy.Peer{ID: peerB}, QuerierSetSize: 1},
		} {
			req.Now = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
			d := p.Evaluate(req)
			if d.Rule == "" || d.Reason == "" {
				t.Fatalf("Evaluate(%+v) = %+v: a decision without a rule or reason", req, d)
			}
		}
	})
}
