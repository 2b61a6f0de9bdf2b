// Package synth generates synthetic consortium data with ground truth for a
// local testnet (`xnode testnet up`, `xnode testnet demo`) and for scale
// tests.
//
// [Generate] makes, for each of N nodes, a clients dataset (resident ID,
// mobile number, loan amount, overdue days, region) and a risk list (resident
// ID, risk level, listed date, source). Clients are drawn so that every pair
// of nodes shares about Overlap×Records people, and every node's risk list
// lists some clients of every other node. The data is deterministic for a
// seed; it is test data, so it uses math/rand/v2, not a secret source.
//
// A few client rows write the resident ID in a legacy but equivalent form
// (lower-case check character 'x'), so that importers must normalise; all
// ground truth ([Truth], computed by [ComputeTruth] from the plaintext alone)
// is over canonical IDs ([CanonicalID]).
//
// [Consortium.WriteCSV] lays the data out as
//
//	dir/truth.json
//	dir/node1/clients.csv    id,phone,amount,overdue_days,region
//	dir/node1/risklist.csv   id,risk_level,listed_date,source
//	dir/node2/…
//
// and [ReadTruth] reads truth.json back.
package synth

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Params says what to generate.
type Params struct {
	Seed        int64   `json:"seed"`
	Nodes       int     `json:"nodes"`        // institutions, ≥ 1
	Records     int     `json:"records"`      // client rows per node
	Overlap     float64 `json:"overlap"`      // expected shared clients per pair, as a fraction of Records, in [0, 1]
	RiskRecords int     `json:"risk_records"` // risk-list rows per node
}

// MaxRecords bounds Records and RiskRecords so that a typo cannot exhaust memory.
const MaxRecords = 10_000_000

// Risk levels of a risk list.
const (
	RiskLow    = "low"
	RiskMedium = "medium"
	RiskHigh   = "high"
)

// RiskSources are the sources a risk-list entry names.
var RiskSources = []string{"court_enforcement", "fraud_report", "consortium_shared", "internal_review"}

// Client is one row of a node's clients dataset.
type Client struct {
	ID          string // as written in the file: canonical, or with a lower-case 'x'
	Phone       string
	Amount      Amount
	OverdueDays int
	Region      string
}

// RiskEntry is one row of a node's risk list. IDs are canonical.
type RiskEntry struct {
	ID         string `json:"id"`
	Level      string `json:"risk_level"`
	ListedDate string `json:"listed_date"` // YYYY-MM-DD
	Source     string `json:"source"`
}

// Node is one institution's plaintext data.
type Node struct {
	Name     string // "node1", "node2", …
	Clients  []Client
	RiskList []RiskEntry
}

// Consortium is the generated data of every node and its ground truth.
type Consortium struct {
	Params Params
	Nodes  []Node
	Truth  *Truth
}

// person is someone who may be a client of several nodes.
type person struct {
	id       string // canonical
	phone    string
	province string
}

// Generate makes the datasets and ground truth described by p.
func Generate(p Params) (*Consortium, error) {
	switch {
	case p.Nodes < 1:
		return nil, fmt.Errorf("synth: Nodes = %d, want at least 1", p.Nodes)
	case p.Records < 0 || p.Records > MaxRecords:
		return nil, fmt.Errorf("synth: Records = %d, want 0 to %d", p.Records, MaxRecords)
	case p.RiskRecords < 0 || p.RiskRecords > MaxRecords:
		return nil, fmt.Errorf("synth: RiskRecords = %d, want 0 to %d", p.RiskRecords, MaxRecords)
	case !(p.Overlap >= 0 && p.Overlap <= 1):
		return nil, fmt.Errorf("synth: Overlap = %v, want a fraction in [0, 1]", p.Overlap)
	}
	r := rand.New(rand.NewPCG(uint64(p.Seed), 0x78_6e_6f_64_65)) // "xnode"
	used := make(map[string]struct{}, p.Nodes*(p.Records+p.RiskRecords))
	fresh := func() person {
		for {
			id, prov := newID(r)
			if _, dup := used[id]; !dup {
				used[id] = struct{}{}
				return person{id: id, phone: newPhone(r), province: prov}
			}
		}
	}

	// A node takes k people of a shared pool of Records people and
	// Records−k people of its own. Two nodes then share k²/Records people on
	// average (hypergeometric), which is Overlap×Records for k = Records·√Overlap.
	k := int(math.Round(float64(p.Records) * math.Sqrt(p.Overlap)))
	pool := make([]person, 0, p.Records)
	if k > 0 {
		for range p.Records {
			pool = append(pool, fresh())
		}
	}
	nodes := make([]Node, p.Nodes)
	for i := range nodes {
		people := make([]person, 0, p.Records)
		if k > 0 {
			for _, j := range r.Perm(len(pool))[:k] {
				people = append(people, pool[j])
			}
		}
		for len(people) < p.Records {
			people = append(people, fresh())
		}
		r.Shuffle(len(people), func(a, b int) { people[a], people[b] = people[b], people[a] })
		clients := make([]Client, len(people))
		for j, pe := range people {
			clients[j] = newClient(r, pe)
		}
		nodes[i] = Node{Name: fmt.Sprintf("node%d", i+1), Clients: clients}
	}

	// Each risk list names about half of its entries from other nodes'
	// clients, spread evenly so every other node has hits, and the rest from
	// people who are nobody's client.
	for i := range nodes {
		listed := map[string]struct{}{}
		var ids []string
		add := func(id string) {
			if _, dup := listed[id]; !dup && len(ids) < p.RiskRecords {
				listed[id] = struct{}{}
				ids = append(ids, id)
			}
		}
		if others := p.Nodes - 1; others > 0 {
			per := p.RiskRecords / (2 * others)
			if per == 0 && p.RiskRecords >= others {
				per = 1
			}
			for j := range nodes {
				if j == i || len(nodes[j].Clients) == 0 {
					continue
				}
				for _, c := range sample(r, len(nodes[j].Clients), per) {
					id, _ := CanonicalID(nodes[j].Clients[c].ID)
					add(id)
				}
			}
		}
		for len(ids) < p.RiskRecords {
			add(fresh().id)
		}
		r.Shuffle(len(ids), func(a, b int) { ids[a], ids[b] = ids[b], ids[a] })
		nodes[i].RiskList = make([]RiskEntry, len(ids))
		for j, id := range ids {
			nodes[i].RiskList[j] = newRiskEntry(r, id)
		}
	}

	c := &Consortium{Params: p, Nodes: nodes}
	c.Truth = ComputeTruth(p, nodes)
	return c, nil
}

// sample returns min(k, n) distinct indices below n.
func sample(r *rand.Rand, n, k int) []int {
	if k >= n {
		return r.Perm(n)
	}
	seen := make(map[int]struct{}, k)
	out := make([]int, 0, k)
	for len(out) < k {
		j := r.IntN(n)
		if _, dup := seen[j]; !dup {
			seen[j] = struct{}{}
			out = append(out, j)
		}
	}
	return out
}

// legacyFraction is the chance that an ID whose check character is 'X' is
// written with a lower-case 'x' (about 1 in 11 IDs end in 'X').
const legacyFraction = 0.3

func newClient(r *rand.Rand, pe person) Client {
	id := pe.id
	if strings.HasSuffix(id, "X") && r.Float64() < legacyFraction {
		id = id[:17] + "x"
	}
	region := pe.province
	if r.IntN(5) == 0 { // a fifth borrow away from where the ID was issued
		region = Regions[r.IntN(len(Regions))]
	}
	// Loan amounts are log-normal around ¥60,000, between ¥1,000 and ¥5,000,000.
	yuan := math.Exp(11 + r.NormFloat64())
	yuan = min(max(yuan, 1_000), 5_000_000)
	return Client{
		ID:          id,
		Phone:       pe.phone,
		Amount:      Amount(math.Round(yuan * 100)),
		OverdueDays: overdueDays(r),
		Region:      region,
	}
}

// overdueDays is skewed: most loans are current, a few are far behind.
func overdueDays(r *rand.Rand) int {
	switch x := r.IntN(100); {
	case x < 80:
		return 0
	case x < 90:
		return 1 + r.IntN(30)
	case x < 95:
		return 31 + r.IntN(60)
	case x < 99:
		return 91 + r.IntN(275)
	default:
		return 366 + r.IntN(635)
	}
}

var (
	listedFirst = dayNumber(2018, 1, 1)
	listedLast  = dayNumber(2025, 12, 31)
)

func newRiskEntry(r *rand.Rand, id string) RiskEntry {
	level := RiskLow
	switch x := r.IntN(100); {
	case x >= 85:
		level = RiskHigh
	case x >= 50:
		level = RiskMedium
	}
	return RiskEntry{
		ID:         id,
		Level:      level,
		ListedDate: isoDate(listedFirst + r.IntN(listedLast-listedFirst+1)),
		Source:     RiskSources[r.IntN(len(RiskSources))],
	}
}

// Node returns the node named name.
func (c *Consortium) Node(name string) (*Node, error) {
	for i := range c.Nodes {
		if c.Nodes[i].Name == name {
			return &c.Nodes[i], nil
		}
	}
	return nil, fmt.Errorf("synth: no node %q", name)
}

var errNoTruth = errors.New("synth: consortium has no truth")

// sortedKeys returns the keys of a set, sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
