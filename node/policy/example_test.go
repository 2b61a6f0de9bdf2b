package policy_test

import (
	"fmt"
	"time"

	"xnode/node/policy"
)

func ExamplePolicy_Evaluate() {
	p, err := policy.Parse([]byte(`
version = 1

[[rule]]
name = "overlap-any-member"
plugin = "overlap"
datasets = ["customers"]
peers = ["*"]
approval = "auto"
min_set_size = 1000
max_queries_per_peer_per_day = 20
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	for _, size := range []int{5000, 3} {
		d := p.Evaluate(policy.Request{Plugin: "overlap", Dataset: "customers",
			Peer: policy.Peer{Name: "bank-b"}, QuerierSetSize: size, Now: now})
		fmt.Printf("%s by %s: %s\n", d.Verdict, d.Rule, d.Reason)
	}
	d := p.Evaluate(policy.Request{Plugin: "match", Dataset: "customers",
		Peer: policy.Peer{Name: "bank-b"}, QuerierSetSize: 5000, Now: now})
	fmt.Printf("%s by %s\n", d.Verdict, d.Rule)
	// Output:
	// allow by overlap-any-member: rule "overlap-any-member" allows bank-b to run plugin "overlap" on dataset "customers"
	// deny by overlap-any-member: the querier's set has 3 items; rule "overlap-any-member" needs at least 1000
	// deny by default-deny
}
