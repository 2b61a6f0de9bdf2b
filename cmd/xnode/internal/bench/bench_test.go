package bench

import (
	"context"
	"testing"

	"xnode/node/datasets"
)

func TestRunChecksTheAnswer(t *testing.T) {
	for _, mode := range []string{"intersection", "intersection-both", "cardinality"} {
		rep, err := Run(context.Background(), Options{N: 500, M: 400, Overlap: 0.5, Mode: mode, NoFloor: true, Seed: 3})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if !rep.Correct || rep.Cardinality != 200 {
			t.Errorf("%s: correct=%v cardinality=%d, want true/200", mode, rep.Correct, rep.Cardinality)
		}
	}
}

func TestResidentIDsAreValid(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 5000; i++ {
		id := string(ResidentID(i))[len("cn_id:"):]
		if len(id) != 18 || seen[id] {
			t.Fatalf("ResidentID(%d) = %q: not 18 characters or repeated", i, id)
		}
		seen[id] = true
		if norm, err := datasets.Normalise(datasets.KindCNID, id); err != nil || norm != id {
			t.Errorf("ResidentID(%d) = %q: the cn_id normaliser gives %q, %v", i, id, norm, err)
		}
	}
	// An independent check (GB 11643): Σ a_i·2^(17-i) mod 11 over all 18
	// characters, with X = 10, is 1 for a valid ID.
	for i := 0; i < 200; i++ {
		id := string(ResidentID(i * 7919))[len("cn_id:"):]
		sum, w := 0, 1<<17
		for k := 0; k < 18; k++ {
			v := int(id[k] - '0')
			if id[k] == 'X' {
				v = 10
			}
			sum += v * (w % 11)
			w >>= 1
		}
		if sum%11 != 1 {
			t.Errorf("ResidentID(%d) = %s fails the GB 11643 check (sum mod 11 = %d)", i*7919, id, sum%11)
		}
	}
}

func BenchmarkPSI10k(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := Run(context.Background(), Options{N: 10000, M: 10000, Overlap: 0.5, NoFloor: true}); err != nil {
			b.Fatal(err)
		}
	}
}
