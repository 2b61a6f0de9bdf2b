package synth

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
)

// TruthVersion is the version of the truth.json layout.
const TruthVersion = 1

// Truth is the expected answer of every built-in query over a generated
// consortium, computed from the plaintext with plain set arithmetic over
// canonical IDs.
type Truth struct {
	Version int      `json:"version"`
	Params  Params   `json:"params"`
	Nodes   []string `json:"nodes"`
	// Pairs holds one entry per ordered pair (querier ≠ responder), in
	// querier-then-responder order of Nodes.
	Pairs []PairTruth `json:"pairs"`
	// Regions holds one entry per region of Regions, in that order, over the
	// client rows of all nodes.
	Regions []RegionTruth `json:"regions"`
}

// PairTruth is what a querier learns about one responder.
type PairTruth struct {
	Querier   string `json:"querier"`
	Responder string `json:"responder"`
	// Overlap is |querier's clients ∩ responder's clients|.
	Overlap int `json:"overlap"`
	// Intersection is that set of canonical IDs, sorted.
	Intersection []string `json:"intersection"`
	// RiskHits are the querier's clients on the responder's risk list, with
	// the responder's labels, sorted by ID.
	RiskHits []RiskEntry `json:"risk_hits"`
}

// RegionTruth aggregates the client rows of all nodes in one region.
type RegionTruth struct {
	Region        string `json:"region"`
	Clients       int    `json:"clients"`
	AmountSum     Amount `json:"amount_sum"`
	OverdueOver90 int    `json:"overdue_over_90"` // rows with overdue_days > 90
}

// OverdueThreshold is the overdue_days above which a row counts in
// RegionTruth.OverdueOver90.
const OverdueThreshold = 90

// ComputeTruth computes the ground truth of nodes from their plaintext. IDs
// are canonicalised first; a row whose ID is invalid is ignored (Generate
// never writes one).
func ComputeTruth(p Params, nodes []Node) *Truth {
	t := &Truth{Version: TruthVersion, Params: p}
	clients := make([]map[string]struct{}, len(nodes))
	risk := make([]map[string]RiskEntry, len(nodes))
	for i, n := range nodes {
		t.Nodes = append(t.Nodes, n.Name)
		clients[i] = make(map[string]struct{}, len(n.Clients))
		for _, c := range n.Clients {
			if id, err := CanonicalID(c.ID); err == nil {
				clients[i][id] = struct{}{}
			}
		}
		risk[i] = make(map[string]RiskEntry, len(n.RiskList))
		for _, e := range n.RiskList {
			if id, err := CanonicalID(e.ID); err == nil {
				e.ID = id
				risk[i][id] = e
			}
		}
	}
	for q := range nodes {
		mine := sortedKeys(clients[q])
		for r := range nodes {
			if q == r {
				continue
			}
			pt := PairTruth{Querier: nodes[q].Name, Responder: nodes[r].Name, Intersection: []string{}, RiskHits: []RiskEntry{}}
			for _, id := range mine {
				if _, ok := clients[r][id]; ok {
					pt.Intersection = append(pt.Intersection, id)
				}
				if e, ok := risk[r][id]; ok {
					pt.RiskHits = append(pt.RiskHits, e)
				}
			}
			pt.Overlap = len(pt.Intersection)
			t.Pairs = append(t.Pairs, pt)
		}
	}
	agg := map[string]*RegionTruth{}
	for _, n := range nodes {
		for _, c := range n.Clients {
			rt := agg[c.Region]
			if rt == nil {
				rt = &RegionTruth{Region: c.Region}
				agg[c.Region] = rt
			}
			rt.Clients++
			rt.AmountSum += c.Amount
			if c.OverdueDays > OverdueThreshold {
				rt.OverdueOver90++
			}
		}
	}
	// Every region of Regions in order (zero if absent), then any other
	// region sorted.
	for _, reg := range Regions {
		rt := RegionTruth{Region: reg}
		if a := agg[reg]; a != nil {
			rt = *a
			delete(agg, reg)
		}
		t.Regions = append(t.Regions, rt)
	}
	for _, reg := range sortedKeys(agg) {
		t.Regions = append(t.Regions, *agg[reg])
	}
	return t
}

// Pair returns the truth for querier asking responder.
func (t *Truth) Pair(querier, responder string) (*PairTruth, error) {
	i := slices.IndexFunc(t.Pairs, func(p PairTruth) bool { return p.Querier == querier && p.Responder == responder })
	if i < 0 {
		return nil, fmt.Errorf("synth: no truth for querier %q and responder %q", querier, responder)
	}
	return &t.Pairs[i], nil
}

// Region returns the aggregate truth of one region.
func (t *Truth) Region(name string) (*RegionTruth, error) {
	i := slices.IndexFunc(t.Regions, func(r RegionTruth) bool { return r.Region == name })
	if i < 0 {
		return nil, fmt.Errorf("synth: no truth for region %q", name)
	}
	return &t.Regions[i], nil
}

// DecodeTruth reads a truth.json document.
func DecodeTruth(r io.Reader) (*Truth, error) {
	var t Truth
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("failed to decode truth: %w", err)
	}
	if t.Version != TruthVersion {
		return nil, fmt.Errorf("truth version %d, this build reads version %d: regenerate it with xnode testnet up", t.Version, TruthVersion)
	}
	return &t, nil
}

// ReadTruth reads the truth.json at path.
func ReadTruth(path string) (*Truth, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open truth: %w", err)
	}
	defer f.Close()
	t, err := DecodeTruth(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}
