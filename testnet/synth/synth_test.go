package synth_test

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"xnode/testnet/synth"
)

// checkOK validates an 18-character ID by the defining property of ISO 7064
// MOD 11-2 (GB 11643 §8.2): Σ aᵢ·2^(18−i) ≡ 1 (mod 11) over all 18
// characters, with 'X' standing for 10. Weights are computed, not copied.
func checkOK(id string) bool {
	if len(id) != 18 {
		return false
	}
	sum, w := 0, 1 // w = 2^(18-i) mod 11, from i = 18 down to 1
	for i := 17; i >= 0; i-- {
		var a int
		switch c := id[i]; {
		case c >= '0' && c <= '9':
			a = int(c - '0')
		case i == 17 && c == 'X':
			a = 10
		default:
			return false
		}
		sum += a * w
		w = w * 2 % 11
	}
	return sum%11 == 1
}

var (
	phoneRE  = regexp.MustCompile(`^1(3[0-9]|5[0-35-9]|8[0-9]|9[0-35-9])[0-9]{8}$`)
	amountRE = regexp.MustCompile(`^[0-9]+\.[0-9]{2}$`)
	// Province-level codes of the eight regions: 11 Beijing, 31 Shanghai,
	// 44 Guangdong, 33 Zhejiang, 32 Jiangsu, 51 Sichuan, 42 Hubei, 37 Shandong.
	provinceCodes = map[string]bool{"11": true, "31": true, "44": true, "33": true, "32": true, "51": true, "42": true, "37": true}
)

func generate(t *testing.T, p synth.Params) *synth.Consortium {
	t.Helper()
	c, err := synth.Generate(p)
	if err != nil {
		t.Fatalf("Generate(%+v): %v", p, err)
	}
	return c
}

var small = synth.Params{Seed: 1, Nodes: 4, Records: 2000, Overlap: 0.2, RiskRecords: 300}

func TestCheckDigit(t *testing.T) {
	// The GB 11643-1999 worked example.
	if got := synth.CheckDigit("11010519491231002"); got != 'X' {
		t.Errorf("CheckDigit(11010519491231002) = %c, want X", got)
	}
	for _, id := range []string{"11010519491231002X", "440524188001010014"} {
		if !checkOK(id) {
			t.Fatalf("independent check refuses known-good %s", id)
		}
		if got := synth.CheckDigit(id[:17]); got != id[17] {
			t.Errorf("CheckDigit(%s) = %c, want %c", id[:17], got, id[17])
		}
	}
}

func TestCanonicalID(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"11010519491231002X", "11010519491231002X", true},
		{"11010519491231002x", "11010519491231002X", true},
		{"440524188001010014", "440524188001010014", true},
		{"440524188001010015", "", false},  // wrong check digit
		{"11010519491231002", "", false},   // 17 characters
		{"1101051949123100211", "", false}, // 19 characters
		{"11010519491231a02X", "", false},  // letter in the body
		{"11010519491231002Y", "", false},  // bad check character
		{"110105194912310021", "", false},  // 1 where X is due
		{"１１010519491231002X", "", false},  // full-width digits
		{"11010519491231002X ", "", false}, // trailing space
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := synth.CanonicalID(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("CanonicalID(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestGeneratedFieldsRealistic(t *testing.T) {
	c := generate(t, small)
	first, last := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2005, 12, 31, 0, 0, 0, 0, time.UTC)
	checkID := func(where, id string) {
		t.Helper()
		canon := strings.ToUpper(id)
		if !checkOK(canon) {
			t.Fatalf("%s: ID %q fails the MOD 11-2 check", where, id)
		}
		if !provinceCodes[canon[:2]] {
			t.Errorf("%s: ID %q has area code %s outside the eight provinces", where, id, canon[:6])
		}
		birth, err := time.Parse("20060102", canon[6:14])
		if err != nil || birth.Before(first) || birth.After(last) {
			t.Errorf("%s: ID %q has birth date %s, want a date in 1950–2005", where, id, canon[6:14])
		}
	}
	lower, zero, rows := 0, 0, 0
	for _, n := range c.Nodes {
		if len(n.Clients) != small.Records || len(n.RiskList) != small.RiskRecords {
			t.Errorf("%s: %d clients and %d risk entries, want %d and %d", n.Name, len(n.Clients), len(n.RiskList), small.Records, small.RiskRecords)
		}
		seen := map[string]bool{}
		for _, cl := range n.Clients {
			checkID(n.Name+" clients", cl.ID)
			if strings.HasSuffix(cl.ID, "x") {
				lower++
			}
			canon := strings.ToUpper(cl.ID)
			if seen[canon] {
				t.Errorf("%s: client %s listed twice", n.Name, canon)
			}
			seen[canon] = true
			if !phoneRE.MatchString(cl.Phone) {
				t.Errorf("%s: phone %q is not a mainland mobile number", n.Name, cl.Phone)
			}
			if a := cl.Amount.String(); !amountRE.MatchString(a) || cl.Amount <= 0 {
				t.Errorf("%s: amount %q, want a positive decimal with two places", n.Name, a)
			}
			if cl.OverdueDays < 0 {
				t.Errorf("%s: overdue days %d < 0", n.Name, cl.OverdueDays)
			}
			if cl.OverdueDays == 0 {
				zero++
			}
			if !slices.Contains(synth.Regions, cl.Region) {
				t.Errorf("%s: region %q not in %v", n.Name, cl.Region, synth.Regions)
			}
			rows++
		}
		listed := map[string]bool{}
		for _, e := range n.RiskList {
			checkID(n.Name+" risklist", e.ID)
			if e.ID != strings.ToUpper(e.ID) {
				t.Errorf("%s: risk-list ID %q is not canonical", n.Name, e.ID)
			}
			if listed[e.ID] {
				t.Errorf("%s: risk-list ID %s listed twice", n.Name, e.ID)
			}
			listed[e.ID] = true
			if !slices.Contains([]string{synth.RiskLow, synth.RiskMedium, synth.RiskHigh}, e.Level) {
				t.Errorf("%s: risk level %q", n.Name, e.Level)
			}
			if _, err := time.Parse(time.DateOnly, e.ListedDate); err != nil {
				t.Errorf("%s: listed date %q: %v", n.Name, e.ListedDate, err)
			}
			if !slices.Contains(synth.RiskSources, e.Source) {
				t.Errorf("%s: source %q", n.Name, e.Source)
			}
		}
	}
	// About 1 in 11 IDs end in X and 30% of those are written 'x': ~2.7%.
	if frac := float64(lower) / float64(rows); frac < 0.01 || frac > 0.05 {
		t.Errorf("%d of %d client IDs written with a lower-case x (%.3f), want 1%%–5%%", lower, rows, frac)
	}
	if frac := float64(zero) / float64(rows); frac < 0.7 || frac > 0.9 {
		t.Errorf("%.2f of rows have overdue_days 0, want most (0.7–0.9)", frac)
	}
}

func TestDeterministic(t *testing.T) {
	a := generate(t, small)
	b := generate(t, small)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("Generate(%+v) differs between two calls", small)
	}
	other := small
	other.Seed = 2
	if c := generate(t, other); reflect.DeepEqual(a.Nodes, c.Nodes) {
		t.Errorf("Generate with seeds 1 and 2 gave the same data")
	}
}

func TestOverlapSizes(t *testing.T) {
	tests := []struct {
		name    string
		overlap float64
	}{
		{"none", 0}, {"tenth", 0.1}, {"third", 0.33}, {"all", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := small
			p.Overlap = tt.overlap
			c := generate(t, p)
			want := tt.overlap * float64(p.Records)
			// Hypergeometric spread is below √want; allow 6σ plus rounding.
			tol := 6*sqrt(want) + 2
			for _, pt := range c.Truth.Pairs {
				if d := float64(pt.Overlap) - want; d > tol || d < -tol {
					t.Errorf("overlap(%s, %s) = %d, want %.0f ± %.0f", pt.Querier, pt.Responder, pt.Overlap, want, tol)
				}
			}
			if tt.overlap == 1 {
				for _, pt := range c.Truth.Pairs {
					if pt.Overlap != p.Records {
						t.Errorf("overlap(%s, %s) = %d with Overlap 1, want all %d", pt.Querier, pt.Responder, pt.Overlap, p.Records)
					}
				}
			}
		})
	}
}

func sqrt(x float64) float64 {
	r := x
	for range 50 {
		if r == 0 {
			return 0
		}
		r = (r + x/r) / 2
	}
	return r
}

func TestRiskListsHitEveryOtherNode(t *testing.T) {
	c := generate(t, small)
	per := small.RiskRecords / (2 * (small.Nodes - 1))
	if len(c.Truth.Pairs) != small.Nodes*(small.Nodes-1) {
		t.Fatalf("truth has %d pairs, want %d", len(c.Truth.Pairs), small.Nodes*(small.Nodes-1))
	}
	for _, pt := range c.Truth.Pairs {
		if len(pt.RiskHits) < per {
			t.Errorf("risk hits(%s on %s's list) = %d, want at least %d", pt.Querier, pt.Responder, len(pt.RiskHits), per)
		}
	}
	// Few risk entries still give every pair a hit.
	p := small
	p.RiskRecords = p.Nodes - 1
	for _, pt := range generate(t, p).Truth.Pairs {
		if len(pt.RiskHits) == 0 {
			t.Errorf("RiskRecords %d: no hit for %s on %s's list", p.RiskRecords, pt.Querier, pt.Responder)
		}
	}
}

func TestParamsRefused(t *testing.T) {
	for _, p := range []synth.Params{
		{Nodes: 0, Records: 10},
		{Nodes: 2, Records: -1},
		{Nodes: 2, Records: 10, Overlap: -0.1},
		{Nodes: 2, Records: 10, Overlap: 1.5},
		{Nodes: 2, Records: 10, RiskRecords: -1},
		{Nodes: 2, Records: synth.MaxRecords + 1},
	} {
		if _, err := synth.Generate(p); err == nil {
			t.Errorf("Generate(%+v) succeeded, want an error", p)
		}
	}
	if c, err := synth.Generate(synth.Params{Nodes: 1}); err != nil || len(c.Nodes) != 1 || len(c.Truth.Pairs) != 0 {
		t.Errorf("Generate(1 empty node) = %+v, %v; want one node and no pairs", c, err)
	}
}

func TestAmount(t *testing.T) {
	for _, tt := range []struct {
		s string
		a synth.Amount
	}{{"0.00", 0}, {"0.05", 5}, {"12345.67", 1234567}, {"-3.10", -310}, {"-0.01", -1}} {
		if got := tt.a.String(); got != tt.s {
			t.Errorf("Amount(%d).String() = %q, want %q", tt.a, got, tt.s)
		}
		if got, err := synth.ParseAmount(tt.s); err != nil || got != tt.a {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", tt.s, got, err, tt.a)
		}
	}
	for _, bad := range []string{"", "1", "1.5", "1.555", ".50", "1,00", "a.bc", "1.-5"} {
		if got, err := synth.ParseAmount(bad); err == nil {
			t.Errorf("ParseAmount(%q) = %d, nil; want an error", bad, got)
		}
	}
}

func readCSV(t *testing.T, path string, header []string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(rows) == 0 || !slices.Equal(rows[0], header) {
		t.Fatalf("%s: header %v, want %v", path, rows[0], header)
	}
	return rows[1:]
}

// TestTruthMatchesCSV recomputes every answer from the written CSV files by
// brute force — nested loops, its own ID check and amount parsing — and
// compares with truth.json.
func TestTruthMatchesCSV(t *testing.T) {
	p := small
	p.Records, p.RiskRecords = 600, 90
	c := generate(t, p)
	dir := t.TempDir()
	if err := c.WriteCSV(dir); err != nil {
		t.Fatalf("WriteCSV: %v", err)
	}
	truth, err := synth.ReadTruth(filepath.Join(dir, synth.TruthFile))
	if err != nil {
		t.Fatalf("ReadTruth: %v", err)
	}
	if !reflect.DeepEqual(truth, c.Truth) {
		t.Errorf("truth.json does not read back as the generated truth")
	}

	type client struct{ id, amount, overdue, region string }
	clients := make([][]client, p.Nodes)
	risk := make([][][]string, p.Nodes)
	names := make([]string, p.Nodes)
	lowerSeen := false
	for i := range p.Nodes {
		names[i] = "node" + strconv.Itoa(i+1)
		for _, r := range readCSV(t, filepath.Join(dir, names[i], "clients.csv"), []string{"id", "phone", "amount", "overdue_days", "region"}) {
			if strings.HasSuffix(r[0], "x") {
				lowerSeen = true
			}
			id := strings.Replace(r[0], "x", "X", 1)
			if !checkOK(id) {
				t.Fatalf("%s/clients.csv: bad ID %q", names[i], r[0])
			}
			clients[i] = append(clients[i], client{id, r[2], r[3], r[4]})
		}
		risk[i] = readCSV(t, filepath.Join(dir, names[i], "risklist.csv"), []string{"id", "risk_level", "listed_date", "source"})
	}
	if !lowerSeen {
		t.Errorf("no client row wrote its ID with a lower-case x; normalisation is not exercised")
	}
	if !slices.Equal(truth.Nodes, names) {
		t.Errorf("truth nodes %v, want %v", truth.Nodes, names)
	}

	pairs := 0
	for q := range p.Nodes {
		for r := range p.Nodes {
			if q == r {
				continue
			}
			pairs++
			var inter []string
			var hits []synth.RiskEntry
			for _, a := range clients[q] {
				for _, b := range clients[r] {
					if a.id == b.id {
						inter = append(inter, a.id)
					}
				}
				for _, e := range risk[r] {
					if a.id == e[0] {
						hits = append(hits, synth.RiskEntry{ID: e[0], Level: e[1], ListedDate: e[2], Source: e[3]})
					}
				}
			}
			sort.Strings(inter)
			sort.Slice(hits, func(i, j int) bool { return hits[i].ID < hits[j].ID })
			pt, err := truth.Pair(names[q], names[r])
			if err != nil {
				t.Fatal(err)
			}
			if pt.Overlap != len(inter) || !slices.Equal(pt.Intersection, inter) {
				t.Errorf("truth overlap(%s, %s) = %d, brute force from CSV gives %d", names[q], names[r], pt.Overlap, len(inter))
			}
			if !slices.Equal(pt.RiskHits, hits) {
				t.Errorf("truth risk hits(%s on %s) = %d entries, brute force from CSV gives %d", names[q], names[r], len(pt.RiskHits), len(hits))
			}
			if len(inter) == 0 || len(hits) == 0 {
				t.Errorf("pair (%s, %s): %d shared, %d hits; the test data should exercise both", names[q], names[r], len(inter), len(hits))
			}
		}
	}
	if len(truth.Pairs) != pairs {
		t.Errorf("truth has %d pairs, want %d", len(truth.Pairs), pairs)
	}

	type agg struct {
		n, over90 int
		cents     int64
	}
	want := map[string]*agg{}
	for i := range p.Nodes {
		for _, cl := range clients[i] {
			a := want[cl.region]
			if a == nil {
				a = &agg{}
				want[cl.region] = a
			}
			whole, frac, _ := strings.Cut(cl.amount, ".")
			w, err1 := strconv.ParseInt(whole, 10, 64)
			f, err2 := strconv.ParseInt(frac, 10, 64)
			d, err3 := strconv.Atoi(cl.overdue)
			if err1 != nil || err2 != nil || err3 != nil || len(frac) != 2 {
				t.Fatalf("bad row %+v", cl)
			}
			a.n++
			a.cents += w*100 + f
			if d > 90 {
				a.over90++
			}
		}
	}
	if len(truth.Regions) != len(want) {
		t.Errorf("truth has %d regions, CSV has %d", len(truth.Regions), len(want))
	}
	for _, rt := range truth.Regions {
		a := want[rt.Region]
		if a == nil {
			t.Errorf("truth region %q has no rows in the CSV", rt.Region)
			continue
		}
		if rt.Clients != a.n || int64(rt.AmountSum) != a.cents || rt.OverdueOver90 != a.over90 {
			t.Errorf("truth region %s = (%d clients, %s, %d over 90), CSV gives (%d, %d fen, %d)",
				rt.Region, rt.Clients, rt.AmountSum, rt.OverdueOver90, a.n, a.cents, a.over90)
		}
	}
}

func TestReadTruthRefusesOtherVersions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "truth.json")
	for _, doc := range []string{`{"version":2}`, `{"version":1,"surprise":true}`, `not json`} {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := synth.ReadTruth(path); err == nil {
			t.Errorf("ReadTruth(%s) succeeded, want an error", doc)
		}
	}
	if _, err := synth.ReadTruth(filepath.Join(dir, "missing.json")); err == nil {
		t.Errorf("ReadTruth(missing file) succeeded, want an error")
	}
}
