// Package policy holds an institution's rules for what may run on its data:
// the file policy.toml in the node's data dir, documented in docs/POLICY.md
// (node/policy/example.toml is a commented example).
//
// A policy is a list of rules. Each names a plugin (optionally pinned to the
// SHA-256 digests of approved plugin binaries), the datasets it may read,
// the peers that may ask, whether a person must approve, the smallest
// querier set accepted and how many queries each peer may run per day.
// [Policy.Evaluate] finds the first rule, in file order, that matches the
// request's plugin, dataset and peer; that rule decides. What no rule
// allows is denied as "default-deny". Every denial names its rule and says
// why.
//
// Without a policy.toml the node uses the built-in default policy, which
// has no rules and so denies every query, with a reason that says how to
// allow one.
//
// A [Watcher] reloads the file when it changes and keeps the previous
// policy when the new file is invalid. A [Limiter] counts queries (and, for
// labeled PSI, OPRF evaluations) per peer, rule and calendar day in the
// store's budgets bucket, so the counts survive restarts.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // timezone must work on hosts without a zoneinfo database

	"github.com/BurntSushi/toml"
)

// FileName is the policy file inside a data directory.
const FileName = "policy.toml"

// FormatVersion is the policy file format this package reads.
const FormatVersion = 1

// DefaultDeny is the Rule of a decision no rule allowed.
const DefaultDeny = "default-deny"

// Any is the wildcard for plugins, datasets and peers.
const Any = "*"

// Verdict is a policy decision.
type Verdict string

// The verdicts.
const (
	Allow  Verdict = "allow"  // run without asking anyone
	Manual Verdict = "manual" // queue for a person's approval
	Deny   Verdict = "deny"   // refuse, telling the querier the rule and reason
)

// Approval modes of a rule.
const (
	ApprovalAuto   = "auto"
	ApprovalManual = "manual"
)

// MinParties is the fewest parties any secure aggregation runs with.
const MinParties = 3

// ErrInvalid is wrapped by every error about the content of a policy file.
var ErrInvalid = errors.New("invalid policy")

// Rule is one [[rule]] table of policy.toml. See docs/POLICY.md.
type Rule struct {
	// Name identifies the rule in decisions, denials and rate limits.
	Name        string `toml:"name"`
	Description string `toml:"description"`
	// Plugin is a plugin name, or "*" for any plugin.
	Plugin string `toml:"plugin"`
	// PluginDigests, if set, are the SHA-256 digests ("sha256:<hex>") of
	// the approved plugin binaries; a query naming another digest is denied.
	PluginDigests []string `toml:"plugin_digests"`
	// Datasets the plugin may read; "*" for any.
	Datasets []string `toml:"datasets"`
	// Peers that may query: names, peer IDs, or "*" for any member.
	Peers []string `toml:"peers"`
	// Approval is "auto" or "manual" (the default).
	Approval string `toml:"approval"`
	// MinSetSize refuses a query whose querier set is smaller. Required.
	MinSetSize *int `toml:"min_set_size"`
	// MinParties refuses a secure aggregation with fewer parties, the
	// querier included (default and least: 3, since with two parties a sum
	// reveals the other's input). It does not apply to PSI.
	MinParties int `toml:"min_parties"`
	// MaxQueriesPerPeerPerDay caps queries per peer per calendar day; 0 or
	// absent: no cap.
	MaxQueriesPerPeerPerDay int `toml:"max_queries_per_peer_per_day"`
	// EvaluationBudgetPerPeerPerDay caps the OPRF evaluations (labeled PSI)
	// per peer per day; 0 or absent: no cap.
	EvaluationBudgetPerPeerPerDay int64 `toml:"evaluation_budget_per_peer_per_day"`
	// Expires, if set, is when the rule stops applying.
	Expires time.Time `toml:"expires"`
}

// Policy is a parsed policy file. It is immutable and safe to share.
type Policy struct {
	// Version is the file format version (1).
	Version int `toml:"version"`
	// Timezone names the IANA zone whose calendar days the per-day limits
	// count in; default "UTC".
	Timezone string `toml:"timezone"`
	Rules    []Rule `toml:"rule"`

	loc     *time.Location
	source  string
	digest  string
	builtin bool
}

// Peer identifies the querying peer.
type Peer struct {
	Name string // display name from its membership certificate
	ID   string // libp2p peer ID
}

func (p Peer) String() string {
	switch {
	case p.Name == "":
		return p.ID
	case p.ID == "":
		return p.Name
	}
	return p.Name + " (" + p.ID + ")"
}

// Request is what a participant checks before it takes part in a query.
type Request struct {
	Plugin string
	// PluginDigest is the SHA-256 of the plugin binary the query names,
	// "sha256:<hex>" or bare hex.
	PluginDigest string
	// Dataset is this node's dataset the query would read.
	Dataset string
	Peer    Peer
	// QuerierSetSize is how many items the querier brings; 0 if unknown.
	QuerierSetSize int
	// Parties is the number of parties of a secure aggregation, the
	// querier included; 0 for other protocols.
	Parties int
	Now     time.Time
}

// Decision is the outcome of Evaluate.
type Decision struct {
	Verdict Verdict `json:"verdict"`
	// Rule is the deciding rule's name, or DefaultDeny.
	Rule string `json:"rule"`
	// Reason says why, in words a querier's operator can act on.
	Reason string `json:"reason"`
	// MaxQueriesPerDay and EvaluationBudget are the rule's per-peer daily
	// limits (0: none), for the Limiter.
	MaxQueriesPerDay int   `json:"max_queries_per_day,omitempty"`
	EvaluationBudget int64 `json:"evaluation_budget,omitempty"`
}

// Default returns the built-in policy used when the data dir has no
// policy.toml: no rules, so every query is denied.
func Default() *Policy {
	return &Policy{Version: FormatVersion, Timezone: "UTC", loc: time.UTC, source: "built-in default (no " + FileName + ")", builtin: true}
}

// Load reads DIR/policy.toml, or returns Default if there is none.
func Load(dir string) (*Policy, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read the policy: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p.source = path
	return p, nil
}

// Parse reads a policy file's content. Unknown keys are an error naming
// the key, so a typo never silently weakens a rule.
func Parse(data []byte) (*Policy, error) {
	var p Policy
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		keys := make([]string, len(undec))
		for i, k := range undec {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("%w: unknown key %s (see docs/POLICY.md for the keys)", ErrInvalid, strings.Join(keys, ", "))
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	p.digest = "sha256:" + hex.EncodeToString(sum[:])
	p.source = "parsed"
	return &p, nil
}

var (
	namePattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	digestPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func (p *Policy) validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if p.Version != FormatVersion {
		add("version = %d, this xnode reads version = %d", p.Version, FormatVersion)
	}
	if p.Timezone == "" {
		p.Timezone = "UTC"
	}
	loc, err := time.LoadLocation(p.Timezone)
	if err != nil {
		add("timezone %q is not an IANA time zone such as \"Asia/Shanghai\"", p.Timezone)
		loc = time.UTC
	}
	p.loc = loc
	seen := map[string]bool{}
	for i := range p.Rules {
		r := &p.Rules[i]
		where := fmt.Sprintf("rule %d", i+1)
		if r.Name != "" {
			where = fmt.Sprintf("rule %q", r.Name)
		}
		switch {
		case r.Name == "":
			add("%s has no name", where)
		case !namePattern.MatchString(r.Name):
			add("%s: a name is letters, digits, '.', '_' and '-'", where)
		case r.Name == DefaultDeny:
			add("%s: the name %q is reserved", where, DefaultDeny)
		case seen[r.Name]:
			add("%s appears twice", where)
		}
		seen[r.Name] = true
		if r.Plugin == "" {
			add("%s: plugin is missing (a plugin name, or \"*\")", where)
		}
		for j, d := range r.PluginDigests {
			n, ok := normaliseDigest(d)
			if !ok {
				add("%s: plugin_digests[%d] %q is not \"sha256:\" and 64 hex digits", where, j, d)
			}
			r.PluginDigests[j] = n
		}
		if r.Plugin == Any && len(r.PluginDigests) > 0 {
			add("%s: plugin_digests pin one plugin, so plugin cannot be \"*\"", where)
		}
		if len(r.Datasets) == 0 {
			add("%s: datasets is missing (dataset names, or [\"*\"])", where)
		}
		if len(r.Peers) == 0 {
			add("%s: peers is missing (peer names or IDs, or [\"*\"] for any member)", where)
		}
		for _, l := range [][]string{r.Datasets, r.Peers} {
			if slices.Contains(l, "") {
				add("%s: an empty string in datasets or peers", where)
			}
		}
		switch r.Approval {
		case "":
			r.Approval = ApprovalManual
		case ApprovalAuto, ApprovalManual:
		default:
			add("%s: approval %q is not \"auto\" or \"manual\"", where, r.Approval)
		}
		switch {
		case r.MinSetSize == nil:
			add("%s: min_set_size is missing (set it to 1 to accept any size)", where)
		case *r.MinSetSize < 1:
			add("%s: min_set_size must be at least 1", where)
		}
		switch {
		case r.MinParties != 0 && r.MinParties < 3:
			add("%s: min_parties must be at least 3 (with two parties a sum reveals the other's input)", where)
		}
		if r.MaxQueriesPerPeerPerDay < 0 {
			add("%s: max_queries_per_peer_per_day is negative", where)
		}
		if r.EvaluationBudgetPerPeerPerDay < 0 {
			add("%s: evaluation_budget_per_peer_per_day is negative", where)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return nil
}

// normaliseDigest accepts "sha256:<hex>" or bare hex, any case.
func normaliseDigest(d string) (string, bool) {
	h := strings.ToLower(strings.TrimSpace(d))
	h = strings.TrimPrefix(h, "sha256:")
	if !digestPattern.MatchString(h) {
		return d, false
	}
	return "sha256:" + h, true
}

// Source names where the policy came from: a file path, or the built-in
// default.
func (p *Policy) Source() string { return p.source }

// Digest is "sha256:<hex>" of the file's bytes, for audit entries; empty
// for the built-in default.
func (p *Policy) Digest() string { return p.digest }

// IsDefault reports whether this is the built-in default policy.
func (p *Policy) IsDefault() bool { return p.builtin }

// Location is the time zone whose days the per-day limits count.
func (p *Policy) Location() *time.Location {
	if p.loc == nil {
		return time.UTC
	}
	return p.loc
}

func matches(list []string, v ...string) bool {
	for _, x := range list {
		if x == Any {
			return true
		}
		for _, y := range v {
			if y != "" && x == y {
				return true
			}
		}
	}
	return false
}

// Evaluate decides req. The first rule, in file order, whose plugin,
// datasets and peers match decides; a matching rule that has expired is
// skipped. A denial always names the rule (or DefaultDeny).
func (p *Policy) Evaluate(req Request) Decision {
	deny := func(rule, format string, args ...any) Decision {
		return Decision{Verdict: Deny, Rule: rule, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case req.Plugin == "":
		return deny(DefaultDeny, "the query names no plugin")
	case req.Dataset == "":
		return deny(DefaultDeny, "the query names no dataset")
	case req.Peer.ID == "" && req.Peer.Name == "":
		return deny(DefaultDeny, "the query names no querying peer")
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	// If no rule decides, the denial names the rule the querier most likely
	// meant: an expired rule for this peer, else a rule for this very plugin
	// and dataset that lists other peers, else an expired rule for others.
	var expiredForPeer, otherPeers, expired *Rule
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Plugin != Any && r.Plugin != req.Plugin || !matches(r.Datasets, req.Dataset) {
			continue
		}
		peerOK := matches(r.Peers, req.Peer.ID, req.Peer.Name)
		if !r.Expires.IsZero() && !now.Before(r.Expires) {
			if peerOK && expiredForPeer == nil {
				expiredForPeer = r
			}
			if expired == nil {
				expired = r
			}
			continue
		}
		if peerOK {
			return r.decide(req)
		}
		if otherPeers == nil && r.Plugin != Any {
			otherPeers = r
		}
	}
	expiredDeny := func(r *Rule) Decision {
		return deny(r.Name, "rule %q, which allowed plugin %q on dataset %q, expired at %s",
			r.Name, req.Plugin, req.Dataset, r.Expires.Format(time.RFC3339))
	}
	switch {
	case expiredForPeer != nil:
		return expiredDeny(expiredForPeer)
	case otherPeers != nil:
		return deny(otherPeers.Name, "peer %s is not among the peers rule %q allows to run plugin %q on dataset %q",
			req.Peer, otherPeers.Name, req.Plugin, req.Dataset)
	case expired != nil:
		return expiredDeny(expired)
	case p.builtin:
		return deny(DefaultDeny, "this node has no %s, so it denies every query; its operator can copy node/policy/example.toml into the data dir as %s and add a rule (see docs/POLICY.md)",
			FileName, FileName)
	}
	return deny(DefaultDeny, "no rule allows plugin %q on dataset %q; to allow it, add a [[rule]] with plugin = %q and datasets = [%q] to %s",
		req.Plugin, req.Dataset, req.Plugin, req.Dataset, FileName)
}

// decide applies a rule that matches the request's plugin, dataset and peer.
func (r *Rule) decide(req Request) Decision {
	d := Decision{Rule: r.Name, MaxQueriesPerDay: r.MaxQueriesPerPeerPerDay, EvaluationBudget: r.EvaluationBudgetPerPeerPerDay}
	deny := func(format string, args ...any) Decision {
		return Decision{Verdict: Deny, Rule: r.Name, Reason: fmt.Sprintf(format, args...)}
	}
	if len(r.PluginDigests) > 0 {
		got, ok := normaliseDigest(req.PluginDigest)
		switch {
		case req.PluginDigest == "":
			return deny("rule %q pins the %s plugin's digest, but the query names none", r.Name, r.Plugin)
		case !ok || !slices.Contains(r.PluginDigests, got):
			return deny("plugin %s with digest %s is not approved by rule %q (approved: %s); install the approved plugin or ask this node's operator to approve the new one",
				req.Plugin, req.PluginDigest, r.Name, strings.Join(r.PluginDigests, ", "))
		}
	}
	switch {
	case req.QuerierSetSize == 0 && *r.MinSetSize > 1:
		return deny("rule %q needs a querier set of at least %d items, and the query does not say how many it has", r.Name, *r.MinSetSize)
	case req.QuerierSetSize > 0 && req.QuerierSetSize < *r.MinSetSize:
		return deny("the querier's set has %d items; rule %q needs at least %d", req.QuerierSetSize, r.Name, *r.MinSetSize)
	case req.Parties > 0 && req.Parties < max(r.MinParties, MinParties):
		return deny("the secure sum has %d parties; rule %q needs at least %d", req.Parties, r.Name, max(r.MinParties, MinParties))
	}
	if r.Approval == ApprovalAuto {
		d.Verdict = Allow
		d.Reason = fmt.Sprintf("rule %q allows %s to run plugin %q on dataset %q", r.Name, req.Peer, req.Plugin, req.Dataset)
	} else {
		d.Verdict = Manual
		d.Reason = fmt.Sprintf("rule %q allows %s to run plugin %q on dataset %q once a person approves it (xnode query approve)", r.Name, req.Peer, req.Plugin, req.Dataset)
	}
	return d
}
