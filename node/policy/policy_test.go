package policy_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xnode/node/policy"
)

const (
	digestA = "sha256:8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
	digestB = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	peerB   = "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"
)

const testPolicy = `
version = 1

[[rule]]
name = "overlap-any"
plugin = "overlap"
plugin_digests = ["` + digestA + `"]
datasets = ["customers"]
peers = ["*"]
approval = "auto"
min_set_size = 1000
max_queries_per_peer_per_day = 3

[[rule]]
name = "match-bank-b"
plugin = "match"
datasets = ["customers", "accounts"]
peers = ["bank-b", "` + peerB + `"]
min_set_size = 100

[[rule]]
name = "match-bank-c-auto"
plugin = "match"
datasets = ["accounts"]
peers = ["bank-c"]
approval = "auto"
min_set_size = 1

[[rule]]
name = "old-risk"
plugin = "risk-check"
datasets = ["risk-list"]
peers = ["*"]
approval = "auto"
min_set_size = 1
expires = 2026-01-01T00:00:00Z

[[rule]]
name = "anything-for-auditor"
plugin = "*"
datasets = ["*"]
peers = ["auditor"]
approval = "manual"
min_set_size = 1
`

func mustParse(t *testing.T, s string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func TestEvaluate(t *testing.T) {
	p := mustParse(t, testPolicy)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	bankB := policy.Peer{Name: "bank-b", ID: peerB}
	bankC := policy.Peer{Name: "bank-c", ID: "12D3KooWC"}
	bankD := policy.Peer{Name: "bank-d", ID: "12D3KooWD"}
	tests := []struct {
		name      string
		req       policy.Request
		verdict   policy.Verdict
		rule      string
		reasonHas string
		maxPerDay int
	}{
		{"wildcard peer, pinned digest", policy.Request{Plugin: "overlap", PluginDigest: digestA, Dataset: "customers", Peer: bankD, QuerierSetSize: 5000},
			policy.Allow, "overlap-any", "allows", 3},
		{"digest in bare upper-case hex", policy.Request{Plugin: "overlap", PluginDigest: strings.ToUpper(digestA[7:]), Dataset: "customers", Peer: bankD, QuerierSetSize: 5000},
			policy.Allow, "overlap-any", "allows", 3},
		{"digest mismatch", policy.Request{Plugin: "overlap", PluginDigest: digestB, Dataset: "customers", Peer: bankD, QuerierSetSize: 5000},
			policy.Deny, "overlap-any", "not approved", 0},
		{"digest missing", policy.Request{Plugin: "overlap", Dataset: "customers", Peer: bankD, QuerierSetSize: 5000},
			policy.Deny, "overlap-any", "names none", 0},
		{"set too small", policy.Request{Plugin: "overlap", PluginDigest: digestA, Dataset: "customers", Peer: bankD, QuerierSetSize: 1},
			policy.Deny, "overlap-any", "needs at least 1000", 0},
		{"set size unknown", policy.Request{Plugin: "overlap", PluginDigest: digestA, Dataset: "customers", Peer: bankD},
			policy.Deny, "overlap-any", "does not say", 0},
		{"set exactly the minimum", policy.Request{Plugin: "overlap", PluginDigest: digestA, Dataset: "customers", Peer: bankD, QuerierSetSize: 1000},
			policy.Allow, "overlap-any", "", 3},
		{"manual approval by name", policy.Request{Plugin: "match", Dataset: "customers", Peer: policy.Peer{Name: "bank-b"}, QuerierSetSize: 100},
			policy.Manual, "match-bank-b", "approve", 0},
		{"manual approval by peer ID", policy.Request{Plugin: "match", Dataset: "accounts", Peer: policy.Peer{Name: "renamed", ID: peerB}, QuerierSetSize: 100},
			policy.Manual, "match-bank-b", "", 0},
		{"peer not allowed names the rule", policy.Request{Plugin: "match", Dataset: "customers", Peer: bankC, QuerierSetSize: 100},
			policy.Deny, "match-bank-b", "bank-c (12D3KooWC) is not among the peers", 0},
		{"second rule for another peer", policy.Request{Plugin: "match", Dataset: "accounts", Peer: bankC, QuerierSetSize: 1},
			policy.Allow, "match-bank-c-auto", "", 0},
		{"unknown dataset is default deny", policy.Request{Plugin: "match", Dataset: "payroll", Peer: bankB, QuerierSetSize: 100},
			policy.Deny, policy.DefaultDeny, `add a [[rule]] with plugin = "match" and datasets = ["payroll"]`, 0},
		{"unknown plugin is default deny", policy.Request{Plugin: "segment-stats", Dataset: "customers", Peer: bankB, QuerierSetSize: 100},
			policy.Deny, policy.DefaultDeny, "no rule allows", 0},
		{"expired rule", policy.Request{Plugin: "risk-check", Dataset: "risk-list", Peer: bankB, QuerierSetSize: 1},
			policy.Deny, "old-risk", "expired", 0},
		{"wildcard plugin and dataset", policy.Request{Plugin: "segment-stats", Dataset: "payroll", Peer: policy.Peer{Name: "auditor"}, QuerierSetSize: 1},
			policy.Manual, "anything-for-auditor", "", 0},
		{"no plugin", policy.Request{Dataset: "customers", Peer: bankB},
			policy.Deny, policy.DefaultDeny, "no plugin", 0},
		{"no peer", policy.Request{Plugin: "match", Dataset: "customers", QuerierSetSize: 100},
			policy.Deny, policy.DefaultDeny, "no querying peer", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Now = now
			d := p.Evaluate(tt.req)
			if d.Verdict != tt.verdict || d.Rule != tt.rule || !strings.Contains(d.Reason, tt.reasonHas) || d.MaxQueriesPerDay != tt.maxPerDay {
				t.Errorf("Evaluate(%+v) = %+v, want %s by rule %q with a reason containing %q and max %d/day",
					tt.req, d, tt.verdict, tt.rule, tt.reasonHas, tt.maxPerDay)
			}
			if d.Reason == "" {
				t.Errorf("Evaluate(%+v) gave no reason", tt.req)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const rule = `
version = 1
[[rule]]
name = "r"
plugin = "overlap"
datasets = ["customers"]
peers = ["*"]
min_set_size = 10
`
	tests := []struct {
		name string
		file string
		want string
	}{
		{"unknown rule key", rule + `aproval = "auto"`, "unknown key rule.aproval"},
		{"unknown top-level key", "colour = 1\n" + rule, "unknown key colour"},
		{"not TOML", "version = ", "invalid policy"},
		{"no version", strings.Replace(rule, "version = 1", "", 1), "version = 0"},
		{"future version", strings.Replace(rule, "version = 1", "version = 2", 1), "version = 2"},
		{"missing min_set_size", strings.Replace(rule, "min_set_size = 10", "", 1), "min_set_size is missing"},
		{"zero min_set_size", strings.Replace(rule, "min_set_size = 10", "min_set_size = 0", 1), "at least 1"},
		{"bad approval", rule + `approval = "sometimes"`, `approval "sometimes"`},
		{"bad digest", rule + `plugin_digests = ["sha256:abc"]`, "64 hex digits"},
		{"digest on wildcard plugin", strings.Replace(rule, `"overlap"`, `"*"`, 1) + `plugin_digests = ["` + digestA + `"]`, "cannot be \"*\""},
		{"no peers", strings.Replace(rule, `peers = ["*"]`, "", 1), "peers is missing"},
		{"no datasets", strings.Replace(rule, `datasets = ["customers"]`, "", 1), "datasets is missing"},
		{"no plugin", strings.Replace(rule, `plugin = "overlap"`, "", 1), "plugin is missing"},
		{"duplicate name", rule + strings.Replace(rule, "version = 1", "", 1), "appears twice"},
		{"reserved name", strings.Replace(rule, `name = "r"`, `name = "default-deny"`, 1), "reserved"},
		{"bad timezone", "timezone = \"Mars/Olympus\"\n" + rule, "IANA"},
		{"negative limit", rule + "max_queries_per_peer_per_day = -1", "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.Parse([]byte(tt.file))
			if !errors.Is(err, policy.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
	p := mustParse(t, rule)
	if p.Rules[0].Approval != policy.ApprovalManual {
		t.Errorf("approval omitted = %q, want %q", p.Rules[0].Approval, policy.ApprovalManual)
	}
	if p.Location() != time.UTC {
		t.Errorf("timezone omitted = %v, want UTC", p.Location())
	}
}

func TestLoadMissingFileDeniesAll(t *testing.T) {
	dir := t.TempDir()
	p, err := policy.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !p.IsDefault() || len(p.Rules) != 0 {
		t.Fatalf("Load(empty dir) = %+v, want the built-in default", p)
	}
	d := p.Evaluate(policy.Request{Plugin: "overlap", Dataset: "customers", Peer: policy.Peer{Name: "bank-b"}, QuerierSetSize: 1e6})
	if d.Verdict != policy.Deny || d.Rule != policy.DefaultDeny || !strings.Contains(d.Reason, "example.toml") {
		t.Errorf("default policy decided %+v, want default-deny telling how to add a policy", d)
	}
}

func TestLoadNamesFileOnError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, policy.FileName), []byte("version = 1\nrules = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := policy.Load(dir)
	if err == nil || !strings.Contains(err.Error(), policy.FileName) || !strings.Contains(err.Error(), "unknown key rules") {
		t.Errorf("Load(bad file) = %v, want an error naming the file and the key", err)
	}
}

func TestExampleParses(t *testing.T) {
	data, err := os.ReadFile("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse(data)
	if err != nil {
		t.Fatalf("example.toml: %v", err)
	}
	if len(p.Rules) != 3 || p.Location().String() != "Asia/Shanghai" {
		t.Fatalf("example.toml has %d rules in %v, want 3 in Asia/Shanghai", len(p.Rules), p.Location())
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	d := p.Evaluate(policy.Request{Plugin: "risk-check", Dataset: "risk-list", Peer: policy.Peer{Name: "bank-c"}, QuerierSetSize: 1, Now: now})
	if d.Verdict != policy.Allow || d.EvaluationBudget != 10000 {
		t.Errorf("example risk-check = %+v, want allow with a 10000 evaluation budget", d)
	}
	d = p.Evaluate(policy.Request{Plugin: "risk-check", Dataset: "risk-list", Peer: policy.Peer{Name: "bank-c"}, QuerierSetSize: 1,
		Now: time.Date(2026, 12, 31, 16, 0, 0, 0, time.UTC)})
	if d.Verdict != policy.Deny || d.Rule != "risk-check-members" {
		t.Errorf("example risk-check after expiry = %+v, want deny by risk-check-members", d)
	}
}

func TestMinParties(t *testing.T) {
	p, err := policy.Parse([]byte(`
version = 1

[[rule]]
name = "sums"
plugin = "segment-stats"
datasets = ["clients"]
peers = ["*"]
approval = "auto"
min_set_size = 1
min_parties = 5
`))
	if err != nil {
		t.Fatal(err)
	}
	req := policy.Request{Plugin: "segment-stats", Dataset: "clients", Peer: policy.Peer{Name: "b", ID: "12D3KooWB"}, QuerierSetSize: 10, Now: time.Now()}
	for _, tc := range []struct {
		parties int
		want    policy.Verdict
	}{{0, policy.Allow}, {4, policy.Deny}, {5, policy.Allow}} {
		req.Parties = tc.parties
		if d := p.Evaluate(req); d.Verdict != tc.want || (tc.want == policy.Deny && !strings.Contains(d.Reason, "5")) {
			t.Errorf("Evaluate with %d parties = %+v, want %s", tc.parties, d, tc.want)
		}
	}
	if _, err := policy.Parse([]byte("version = 1\n[[rule]]\nname = \"x\"\nplugin = \"*\"\ndatasets = [\"*\"]\npeers = [\"*\"]\nmin_set_size = 1\nmin_parties = 2\n")); err == nil {
		t.Error("min_parties = 2 was accepted")
	}
}
