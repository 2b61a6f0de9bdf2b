package oprf_test

import (
	"crypto/rand"
	"math"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/cloudflare/circl/group"

	"xnode/protocol/psi/oprf"
)

// benchList is the responder's list size in the benchmarks: 100k, or
// $XNODE_OPRF_BENCH_ITEMS (e.g. 1000000 for docs/BENCHMARKS.md).
var benchList = func() int {
	if n, err := strconv.Atoi(os.Getenv("XNODE_OPRF_BENCH_ITEMS")); err == nil && n > 10_000 {
		return n
	}
	return 100_000
}()

var (
	benchOnce sync.Once
	benchEp   *oprf.Epoch
	benchEnc  *oprf.Encoding
	benchMem  *oprf.MembershipSet
)

func benchSetup(b *testing.B) {
	benchOnce.Do(func() {
		benchEp = newEpoch(b, 1, benchList)
		benchEnc = encode(b, benchEp, listItems(0, benchList))
		benchMem = benchEnc.Membership()
	})
}

// BenchmarkEncode: offline evaluation and encoding of a 100k-item list
// (go test -bench Encode -benchtime 1x).
func BenchmarkEncode(b *testing.B) {
	ep := newEpoch(b, 1, benchList)
	items := listItems(0, benchList)
	b.ResetTimer()
	for range b.N {
		if _, err := ep.Encode(items); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*benchList), "µs/item")
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "cores")
}

// BenchmarkOnline: 10k applicants (1k hits) against the 100k list, in
// memory, both parties in this process.
func BenchmarkOnline(b *testing.B) {
	benchSetup(b)
	x := ids(benchList-1000, benchList+9000)
	for _, c := range []struct {
		name  string
		form  oprf.Form
		cache oprf.Set
	}{
		{"labeled-cached", oprf.Labeled, benchEnc},
		{"membership-cached", oprf.Membership, benchMem},
		{"labeled-fullsync", oprf.Labeled, nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			rc := oprf.ResponderConfig{Epoch: benchEp, Encoding: benchEnc, Membership: benchMem}
			for range b.N {
				qr, _, qerr, rerr := run(b, oprf.QuerierConfig{Form: c.form, Cache: c.cache}, x, rc, nil)
				if qerr != nil || rerr != nil || len(qr.Matches) != 1000 {
					b.Fatalf("session: %v / %v, %d matches", qerr, rerr, len(qr.Matches))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/session")
		})
	}
}

// BenchmarkSize reports the serialised bytes per item of both forms for the
// 100k list (labels of 22–23 bytes).
func BenchmarkSize(b *testing.B) {
	benchSetup(b)
	for range b.N {
		for _, s := range []oprf.Set{benchEnc, benchMem} {
			chunks, err := s.Chunks(oprf.DefaultChunkSize)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for _, c := range chunks {
				n += len(c)
			}
			b.ReportMetric(float64(n)/float64(s.Len()), s.Form().String()+"-B/item")
		}
	}
	b.ReportMetric(math.Log2(benchMem.FalsePositiveRate()), "membership-log2-fpr")
}

// BenchmarkFloor is the primitive floor: one ristretto255 scalar
// multiplication and one RFC 9497 full evaluation, on one core.
func BenchmarkFloor(b *testing.B) {
	g := group.Ristretto255
	k := g.RandomScalar(rand.Reader)
	p := g.HashToElement([]byte("x"), []byte("dst"))
	b.Run("scalar-mult", func(b *testing.B) {
		for range b.N {
			p.Mul(p, k)
		}
	})
	ep := newEpoch(b, 1, 1)
	b.Run("full-evaluate", func(b *testing.B) {
		for range b.N {
			if _, err := ep.Encode([]oprf.Item{{Key: []byte("cn_id:1")}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
