package oprf

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/oprf"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"xnode/protocol"
	"xnode/protocol/memconn"
	"xnode/protocol/psi/oprf/oprftest"
	"xnode/protocol/psi/oprf/pb"
)

type vectorSet struct {
	Identifier string `json:"identifier"`
	Mode       int    `json:"mode"`
	Seed       string `json:"seed"`
	KeyInfo    string `json:"keyInfo"`
	SkSm       string `json:"skSm"`
	PkSm       string `json:"pkSm"`
	Vectors    []struct {
		Batch             int    `json:"Batch"`
		Input             string `json:"Input"`
		Blind             string `json:"Blind"`
		BlindedElement    string `json:"BlindedElement"`
		EvaluationElement string `json:"EvaluationElement"`
		Output            string `json:"Output"`
	} `json:"vectors"`
}

func hexList(t *testing.T, s string) [][]byte {
	var out [][]byte
	for _, h := range strings.Split(s, ",") {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRFC9497Vectors checks the epoch's key derivation input, its full
// evaluation and the responder machine's blind evaluation against RFC 9497
// Appendix A.1.2 (VOPRF, ristretto255-SHA512).
func TestRFC9497Vectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/rfc9497-voprf-ristretto255-sha512.json")
	if err != nil {
		t.Fatal(err)
	}
	var sets []vectorSet
	if err := json.Unmarshal(raw, &sets); err != nil {
		t.Fatal(err)
	}
	if len(sets) != 1 || sets[0].Mode != 1 || sets[0].Identifier != SuiteName {
		t.Fatalf("testdata holds %d sets; want the one VOPRF ristretto255-SHA512 set", len(sets))
	}
	vs := sets[0]
	key, err := oprf.DeriveKey(suite, oprf.VerifiableMode, unhex(t, vs.Seed), unhex(t, vs.KeyInfo))
	if err != nil {
		t.Fatal(err)
	}
	sk, _ := key.MarshalBinary()
	if hex.EncodeToString(sk) != vs.SkSm {
		t.Fatalf("DeriveKeyPair skSm = %x, want %s", sk, vs.SkSm)
	}
	ep, err := NewEpochFromKey(1, EpochConfig{ExpectedItems: 1}, sk)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(ep.com.PublicKey[:]); got != vs.PkSm {
		t.Errorf("commitment public key = %s, want pkSm %s", got, vs.PkSm)
	}
	for i, v := range vs.Vectors {
		inputs, outputs := hexList(t, v.Input), hexList(t, v.Output)
		got, err := ep.evaluate(inputs)
		if err != nil {
			t.Fatal(err)
		}
		for j := range inputs {
			if !bytes.Equal(got[j], outputs[j]) {
				t.Errorf("vector %d input %d: Encode's evaluation = %x, want %x", i, j, got[j], outputs[j])
			}
		}
		// The responder machine evaluates the RFC's blinded elements to the
		// RFC's evaluation elements.
		enc, _ := ep.Encode(nil)
		r, _ := NewResponder(ResponderConfig{Epoch: ep, Encoding: enc})
		hello, _ := encode(&pb.Envelope{Body: &pb.Envelope_Hello{Hello: &pb.Hello{Version: Version, Suite: SuiteName, Form: pb.Form_FORM_LABELED, Count: uint64(v.Batch), Batch: uint32(v.Batch)}}})
		if err := r.Deliver(hello); err != nil {
			t.Fatal(err)
		}
		for m, _ := r.Next(); m != nil; m, _ = r.Next() {
		}
		query, _ := encode(&pb.Envelope{Body: &pb.Envelope_Query{Query: &pb.Query{Packed: bytes.Join(hexList(t, v.BlindedElement), nil)}}})
		if err := r.Deliver(query); err != nil {
			t.Fatal(err)
		}
		m, _ := r.Next()
		env := new(pb.Envelope)
		if err := proto.Unmarshal(m, env); err != nil {
			t.Fatal(err)
		}
		if want := bytes.Join(hexList(t, v.EvaluationElement), nil); !bytes.Equal(env.GetEvaluated().GetPacked(), want) {
			t.Errorf("vector %d: evaluated %x, want %x", i, env.GetEvaluated().GetPacked(), want)
		}
		// And the querier's blinding with the RFC's blinds.
		var pk oprf.PublicKey
		_ = pk.UnmarshalBinary(suite, ep.com.PublicKey[:])
		var blinds []oprf.Blind
		for _, b := range hexList(t, v.Blind) {
			s := group.Ristretto255.NewScalar()
			if err := s.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			blinds = append(blinds, s)
		}
		_, req, err := oprf.NewVerifiableClient(suite, &pk).DeterministicBlind(inputs, blinds)
		if err != nil {
			t.Fatal(err)
		}
		for j, e := range req.Elements {
			b, _ := e.MarshalBinaryCompress()
			if want := hexList(t, v.BlindedElement)[j]; !bytes.Equal(b, want) {
				t.Errorf("vector %d: blinded %x, want %x", i, b, want)
			}
		}
	}
}

// TestNonHitLabelsStayClosed: the querier's outputs of identifiers not in
// the list open no entry's labels, and find no tag.
func TestNonHitLabelsStayClosed(t *testing.T) {
	ep, _ := NewEpoch(rand.Reader, 5, EpochConfig{ExpectedItems: 60})
	var items []Item
	for i := range 60 {
		items = append(items, Item{Key: fmt.Appendf(nil, "cn_id:%d", i), Labels: []byte("level=high")})
	}
	enc, err := ep.Encode(items)
	if err != nil {
		t.Fatal(err)
	}
	var x [][]byte
	for i := 40; i < 100; i++ {
		x = append(x, fmt.Appendf(nil, "cn_id:%d", i))
	}
	q, _ := NewQuerier(QuerierConfig{}, x)
	q.keep = true
	r, _ := NewResponder(ResponderConfig{Epoch: ep, Encoding: enc})
	runPair(t, q, r)
	res, err := q.Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Matches) != 20 || len(q.outputs) != len(x) {
		t.Fatalf("%d matches and %d outputs, want 20 and %d", len(res.Matches), len(q.outputs), len(x))
	}
	hit := map[int]bool{}
	for _, m := range res.Matches {
		hit[m.Index] = true
	}
	tries := 0
	for i, out := range q.outputs {
		if hit[i] {
			continue
		}
		for _, e := range enc.ents {
			tries++
			if l, err := open(enc.com.Epoch, out, e.tag, e.sealed); err == nil {
				t.Fatalf("a non-hit's output (identifier %d) opened an entry's labels %q", i, l)
			}
			if deriveTag(enc.com.Epoch, out) == e.tag {
				t.Fatalf("a non-hit's output matches a tag")
			}
		}
	}
	if tries != 40*60 {
		t.Fatalf("tried %d openings, want %d", tries, 40*60)
	}
}

func runPair(t *testing.T, q *Querier, r *Responder) {
	t.Helper()
	a, b := memconn.Pipe(8, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var g errgroup.Group
	g.Go(func() error { defer a.Close(); return protocol.Run(ctx, q, a) })
	g.Go(func() error { return protocol.Run(ctx, r, b) })
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func randomTags(rng *mrand.Rand, n int) [][TagSize]byte {
	out := make([][TagSize]byte, n)
	for i := range out {
		for j := 0; j < TagSize; j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				out[i][j+k] = byte(v >> (8 * k))
			}
		}
	}
	return out
}

// TestGolombSizeAndFPR checks the membership form's size against the
// package doc's FPRBits + 1 + 1/(e-1) ≈ FPRBits+1.58 bits per item, the ≤ 6 bytes/item target at ε = 2^-44, and its
// false-positive rate empirically at a small ε.
func TestGolombSizeAndFPR(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	const n = 20_000
	p := Params{FPRBits: DefaultFPRBits, Buckets: n >> BucketBits}
	m := buildMembership(Commitment{Epoch: 1}, p, 1, randomTags(rng, n-n%(1<<BucketBits)))
	bits := float64(m.EncodedSize()*8) / float64(m.n)
	want := float64(DefaultFPRBits) + 1 + 1/(math.E-1)
	if bits > want+0.15 || bits < want-0.6 {
		t.Errorf("membership form: %.2f bits/item, want about %.2f", bits, want)
	}
	if bits/8 > 6 {
		t.Errorf("membership form: %.2f bytes/item, want at most 6", bits/8)
	}
	if fpr := m.FalsePositiveRate(); fpr > math.Ldexp(1, -DefaultFPRBits)*1.0001 || 10_000*fpr > 1e-9 {
		t.Errorf("FalsePositiveRate = %g, want ≤ 2^-44 and ≤ 1e-9 per 10k batch", fpr)
	}

	// Empirically at ε = 2^-10: look up random non-members.
	small := Params{FPRBits: 10, Buckets: 8}
	ms := buildMembership(Commitment{Epoch: 1}, small, 1, randomTags(rng, 8<<BucketBits))
	const trials = 60_000
	fp := 0
	for _, tg := range randomTags(rng, trials) {
		j, v := small.locate(tg)
		hit, err := decodeBucket(ms.buckets[j], small.width(), v, nil)
		if err != nil {
			t.Fatal(err)
		}
		if hit {
			fp++
		}
	}
	exp := trials * ms.FalsePositiveRate()
	if math.Abs(float64(fp)-exp) > 5*math.Sqrt(exp) {
		t.Errorf("%d false positives in %d lookups, want about %.1f", fp, trials, exp)
	}
}

func TestBucketRoundTrip(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, 7, 512, 1500} {
		w := uint64(1) << 53
		vals := make([]uint64, n)
		for i := range vals {
			vals[i] = rng.Uint64N(w)
		}
		if n > 3 {
			vals[1] = vals[0] // duplicates are allowed
		}
		slices.Sort(vals)
		b := encodeBucket(vals, w)
		var got []uint64
		if _, err := decodeBucket(b, w, 0, func(v uint64) { got = append(got, v) }); err != nil {
			t.Fatalf("n=%d: decode: %v", n, err)
		}
		if !slices.Equal(got, vals) {
			t.Fatalf("n=%d: round trip differs", n)
		}
		for _, v := range vals {
			if hit, _ := decodeBucket(b, w, v, nil); !hit {
				t.Fatalf("n=%d: member %d not found", n, v)
			}
		}
		if _, err := decodeBucket(append(bytes.Clone(b), 0), w, 0, func(uint64) {}); err == nil {
			t.Errorf("n=%d: trailing byte accepted", n)
		}
	}
}

func FuzzBucket(f *testing.F) {
	f.Add(encodeBucket([]uint64{1, 5, 9, 1 << 40}, 1<<53))
	f.Fuzz(func(t *testing.T, b []byte) {
		var vals []uint64
		if _, err := decodeBucket(b, 1<<53, 0, func(v uint64) { vals = append(vals, v) }); err != nil {
			return
		}
		if !slices.IsSorted(vals) {
			t.Fatal("decoded values not sorted")
		}
		if got := encodeBucket(vals, 1<<53); len(got) > len(b) {
			t.Fatalf("re-encoding is longer (%d) than a valid input (%d)", len(got), len(b))
		}
	})
}

// TestInteropVOPRFTS: @cloudflare/voprf-ts blinds, our responder machine
// evaluates with a batch DLEQ proof, voprf-ts verifies the proof against our
// commitment and finalizes, and its outputs find their items (and open their
// labels) in our encoding. And the reverse: voprf-ts evaluates with our key.
func TestInteropVOPRFTS(t *testing.T) {
	dir := oprftest.PeersDir(t)
	ep, _ := NewEpoch(rand.Reader, 3, EpochConfig{ExpectedItems: 10})
	var items []Item
	var inputs []string
	for i := range 6 {
		k := fmt.Sprintf("cn_id:11010119900307%04d", i)
		items = append(items, Item{Key: []byte(k), Labels: fmt.Appendf(nil, "level=%d", i)})
		inputs = append(inputs, "--input-str", k)
	}
	inputs = append(inputs, "--input-str", "cn_id:not-on-the-list")
	enc, err := ep.Encode(items)
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--suite", "ristretto255", "--mode", "voprf"}
	bl := oprftest.Node(t, dir, append(append([]string{"blind"}, base...), inputs...)...)

	r, _ := NewResponder(ResponderConfig{Epoch: ep, Encoding: enc})
	n := len(inputs) / 2
	hello, _ := encode(&pb.Envelope{Body: &pb.Envelope_Hello{Hello: &pb.Hello{Version: Version, Suite: SuiteName, Form: pb.Form_FORM_LABELED, Count: uint64(n), Batch: uint32(n)}}})
	if err := r.Deliver(hello); err != nil {
		t.Fatal(err)
	}
	for m, _ := r.Next(); m != nil; m, _ = r.Next() {
	}
	query, _ := encode(&pb.Envelope{Body: &pb.Envelope_Query{Query: &pb.Query{Packed: bytes.Join(hexList(t, bl["blinded"]), nil)}}})
	if err := r.Deliver(query); err != nil {
		t.Fatalf("our responder refused voprf-ts's blinded elements: %v", err)
	}
	m, _ := r.Next()
	env := new(pb.Envelope)
	if err := proto.Unmarshal(m, env); err != nil {
		t.Fatal(err)
	}
	ev := env.GetEvaluated()
	var evs []string
	for i := 0; i < len(ev.Packed); i += ElementSize {
		evs = append(evs, hex.EncodeToString(ev.Packed[i:i+ElementSize]))
	}
	pub := hex.EncodeToString(ep.com.PublicKey[:])
	fin := append(append([]string{"finalize"}, base...), inputs...)
	fin = append(fin, "--blind", bl["blind"], "--blinded", bl["blinded"], "--evaluated", strings.Join(evs, ","), "--pub", pub, "--proof", hex.EncodeToString(ev.Proofs))
	outs := hexList(t, oprftest.Node(t, dir, fin...)[""])
	if len(outs) != n {
		t.Fatalf("voprf-ts finalized %d outputs, want %d", len(outs), n)
	}
	for i, o := range outs {
		labels, hit, err := enc.Lookup(o)
		if err != nil {
			t.Fatal(err)
		}
		if i < len(items) && (!hit || !bytes.Equal(labels, items[i].Labels)) {
			t.Errorf("voprf-ts output %d: hit %v labels %q, want %q", i, hit, labels, items[i].Labels)
		}
		if i == len(items) && hit {
			t.Errorf("voprf-ts output of a non-member hits")
		}
	}

	// Reverse: voprf-ts evaluates with our epoch key; outputs equal ours.
	sk := hex.EncodeToString(ep.sk[:])
	js := hexList(t, oprftest.Node(t, dir, append(append([]string{"eval"}, base...), append([]string{"--key", sk}, inputs...)...)...)[""])
	var keys [][]byte
	for i := 1; i < len(inputs); i += 2 {
		keys = append(keys, []byte(inputs[i]))
	}
	ours, _ := ep.evaluate(keys)
	for i := range ours {
		if !bytes.Equal(js[i], ours[i]) {
			t.Errorf("input %d: voprf-ts eval %x, ours %x", i, js[i], ours[i])
		}
	}

	// A tampered proof is rejected by voprf-ts too (exit 3).
	bad := bytes.Clone(ev.Proofs)
	bad[40] ^= 1
	fin[len(fin)-1] = hex.EncodeToString(bad)
	if err := oprftest.NodeErr(dir, fin...); err == nil {
		t.Error("voprf-ts accepted a tampered proof from our responder")
	}
}
