package secagg_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"xnode/protocol/secagg"
	"xnode/protocol/secagg/pb"
	"xnode/protocol/secagg/secaggtest"
)

func config(ids *secaggtest.Identities, t, length int) secagg.Config {
	return secagg.Config{
		Session:   []byte("test-session"),
		Clients:   ids.Clients,
		Threshold: t,
		VectorLen: length,
		Verify:    ids.Verify,
	}
}

// randomInputs draws n vectors of signed values below the overflow bound.
func randomInputs(seed uint64, n, length int) [][]uint64 {
	rng := mrand.New(mrand.NewPCG(seed, 7))
	bound := secagg.InputBound(n)
	in := make([][]uint64, n)
	for i := range in {
		in[i] = make([]uint64, length)
		for j := range in[i] {
			in[i][j] = uint64(rng.Int64N(2*bound) - bound)
		}
	}
	return in
}

// wantSum is the sum of the inputs of the clients in survivors.
func wantSum(ids *secaggtest.Identities, inputs [][]uint64, survivors []secagg.ClientID) []uint64 {
	sum := make([]uint64, len(inputs[0]))
	for i, c := range ids.Clients {
		if slices.Contains(survivors, c) {
			for j, x := range inputs[i] {
				sum[j] += x
			}
		}
	}
	return sum
}

func without(all []secagg.ClientID, drop ...secagg.ClientID) []secagg.ClientID {
	var out []secagg.ClientID
	for _, c := range all {
		if !slices.Contains(drop, c) {
			out = append(out, c)
		}
	}
	return out
}

func checkResult(t *testing.T, ids *secaggtest.Identities, inputs [][]uint64, res *secaggtest.Result, survivors []secagg.ClientID) {
	t.Helper()
	if res.Err != nil {
		t.Fatalf("session failed: %v (server errors %v, client errors %v)", res.Err, res.ServerErrors, res.ClientErrors)
	}
	if !slices.Equal(res.Survivors, survivors) {
		t.Fatalf("survivors = %v, want %v", res.Survivors, survivors)
	}
	want := wantSum(ids, inputs, survivors)
	if !slices.Equal(res.Sum, want) {
		t.Fatalf("sum differs from the survivors' plain sum (first elements %v, want %v)", res.Sum[:min(4, len(want))], want[:min(4, len(want))])
	}
	got := secagg.Signed(res.Sum)
	var plain int64
	for i, c := range ids.Clients {
		if slices.Contains(survivors, c) {
			plain += int64(inputs[i][0])
		}
	}
	if got[0] != plain {
		t.Errorf("Signed(sum)[0] = %d, want %d", got[0], plain)
	}
}

func TestSums(t *testing.T) {
	for _, n := range []int{3, 5, 10} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			ids := secaggtest.NewIdentities(n)
			inputs := randomInputs(uint64(n), n, 1000)
			res, err := secaggtest.Run(config(ids, n/2+1, 1000), ids, inputs, secaggtest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, ids, inputs, res, ids.Clients)
			if res.Deadlines != 0 || len(res.ServerErrors) != 0 || len(res.ClientErrors) != 0 {
				t.Errorf("clean run had %d deadlines, server errors %v, client errors %v", res.Deadlines, res.ServerErrors, res.ClientErrors)
			}
		})
	}
}

// TestChunkedVector runs vectors that need several MaskedInput messages.
func TestChunkedVector(t *testing.T) {
	ids := secaggtest.NewIdentities(3)
	length := 2*secagg.ChunkLen + 5
	inputs := randomInputs(9, 3, length)
	var chunks int
	tap := func(from, to secagg.ClientID, msg []byte) {
		env := new(pb.Envelope)
		if proto.Unmarshal(msg, env) == nil && env.GetMaskedInput() != nil {
			chunks++
		}
	}
	res, err := secaggtest.Run(config(ids, 2, length), ids, inputs, secaggtest.Options{Tap: tap, Drop: map[secagg.ClientID]secagg.Round{"client-01": secagg.RoundUnmask}})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, ids, inputs, res, ids.Clients)
	if chunks != 3*3 {
		t.Errorf("%d masked-input messages, want 9 (3 clients × 3 chunks)", chunks)
	}
}

func TestDropouts(t *testing.T) {
	ids := secaggtest.NewIdentities(5)
	inputs := randomInputs(5, 5, 300)
	cases := []struct {
		name string
		drop map[secagg.ClientID]secagg.Round
		// inSum: dropped clients whose inputs still count (they dropped after
		// sending their masked input).
		inSum []secagg.ClientID
	}{
		{"before advertising", map[secagg.ClientID]secagg.Round{"client-02": secagg.RoundAdvertise}, nil},
		{"before sharing", map[secagg.ClientID]secagg.Round{"client-02": secagg.RoundShareKeys}, nil},
		{"after sharing", map[secagg.ClientID]secagg.Round{"client-02": secagg.RoundMaskedInput}, nil},
		{"after masked input", map[secagg.ClientID]secagg.Round{"client-02": secagg.RoundConsistency}, []secagg.ClientID{"client-02"}},
		{"after consistency", map[secagg.ClientID]secagg.Round{"client-02": secagg.RoundUnmask}, []secagg.ClientID{"client-02"}},
		{"first and last after sharing", map[secagg.ClientID]secagg.Round{"client-00": secagg.RoundMaskedInput, "client-04": secagg.RoundMaskedInput}, nil},
		{"one per round", map[secagg.ClientID]secagg.Round{"client-00": secagg.RoundShareKeys, "client-03": secagg.RoundConsistency}, []secagg.ClientID{"client-03"}},
		{"two after sharing with n-t dropped", map[secagg.ClientID]secagg.Round{"client-01": secagg.RoundMaskedInput, "client-03": secagg.RoundMaskedInput}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := secaggtest.Run(config(ids, 3, 300), ids, inputs, secaggtest.Options{Drop: tc.drop})
			if err != nil {
				t.Fatal(err)
			}
			var gone []secagg.ClientID
			for c := range tc.drop {
				if !slices.Contains(tc.inSum, c) {
					gone = append(gone, c)
				}
			}
			checkResult(t, ids, inputs, res, without(ids.Clients, gone...))
			if res.Deadlines == 0 {
				t.Error("no round ended at its deadline although a client went silent")
			}
		})
	}
}

func TestManyDropouts(t *testing.T) {
	ids := secaggtest.NewIdentities(10)
	inputs := randomInputs(10, 10, 200)
	drop := map[secagg.ClientID]secagg.Round{
		"client-01": secagg.RoundShareKeys,
		"client-04": secagg.RoundMaskedInput,
		"client-07": secagg.RoundMaskedInput,
		"client-09": secagg.RoundUnmask,
	}
	res, err := secaggtest.Run(config(ids, 6, 200), ids, inputs, secaggtest.Options{Drop: drop})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, ids, inputs, res, without(ids.Clients, "client-01", "client-04", "client-07"))
}

func TestTooFewSurvivorsAborts(t *testing.T) {
	ids := secaggtest.NewIdentities(5)
	inputs := randomInputs(3, 5, 50)
	for r := secagg.RoundAdvertise; r <= secagg.RoundUnmask; r++ {
		t.Run(r.String(), func(t *testing.T) {
			drop := map[secagg.ClientID]secagg.Round{"client-00": r, "client-02": r, "client-04": r}
			var unmasks int
			tap := func(from, to secagg.ClientID, msg []byte) {
				env := new(pb.Envelope)
				if proto.Unmarshal(msg, env) == nil && env.GetUnmask() != nil {
					unmasks++
				}
			}
			res, err := secaggtest.Run(config(ids, 3, 50), ids, inputs, secaggtest.Options{Drop: drop, Tap: tap})
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(res.Err, secagg.ErrTooFewSurvivors) {
				t.Fatalf("Result error = %v, want ErrTooFewSurvivors", res.Err)
			}
			if res.Sum != nil || res.Survivors != nil {
				t.Errorf("aborted session returned a partial result: %d elements, survivors %v", len(res.Sum), res.Survivors)
			}
			if unmasks >= 3 {
				t.Errorf("%d clients revealed shares although fewer than t=3 remained", unmasks)
			}
		})
	}
}

// unmaskTamper rewrites the UnmaskRequest sent to one client.
func unmaskTamper(t *testing.T, victim secagg.ClientID, edit func(*pb.UnmaskRequest)) func(from, to secagg.ClientID, msg []byte) []byte {
	return func(from, to secagg.ClientID, msg []byte) []byte {
		if to != victim {
			return msg
		}
		env := new(pb.Envelope)
		if err := proto.Unmarshal(msg, env); err != nil {
			t.Fatal(err)
		}
		req := env.GetUnmaskRequest()
		if req == nil {
			return msg
		}
		edit(req)
		out, err := proto.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// TestClientRefusesInconsistentServer: a server that asks one client for
// both shares of a participant, or shows it another view than it signed, is
// refused; the client reveals nothing and the others still finish.
func TestClientRefusesInconsistentServer(t *testing.T) {
	ids := secaggtest.NewIdentities(5)
	inputs := randomInputs(4, 5, 64)
	victim := secagg.ClientID("client-01")
	cases := []struct {
		name string
		drop map[secagg.ClientID]secagg.Round
		edit func(*pb.UnmaskRequest)
		want error
	}{
		{"asks for both shares of a survivor", nil, func(r *pb.UnmaskRequest) { r.Dropped = []uint32{3} }, secagg.ErrInconsistent},
		{"asks for both shares of a dropped client", map[secagg.ClientID]secagg.Round{"client-03": secagg.RoundMaskedInput},
			func(r *pb.UnmaskRequest) { r.Survivors = []uint32{0, 1, 2, 3, 4} }, secagg.ErrInconsistent},
		{"survivor set other than signed", nil, func(r *pb.UnmaskRequest) { r.Survivors = r.Survivors[:4]; r.Dropped = []uint32{4} }, secagg.ErrInconsistent},
		{"too few consistency signatures", nil, func(r *pb.UnmaskRequest) { r.Sigs = r.Sigs[:2] }, secagg.ErrInconsistent},
		{"forged consistency signature", nil, func(r *pb.UnmaskRequest) { r.Sigs[0].Sig = bytes.Repeat([]byte{1}, 64) }, secagg.ErrBadSignature},
		{"dropped set hides a dropout", map[secagg.ClientID]secagg.Round{"client-03": secagg.RoundMaskedInput},
			func(r *pb.UnmaskRequest) { r.Dropped = nil }, secagg.ErrInconsistent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var victimRevealed bool
			tap := func(from, to secagg.ClientID, msg []byte) {
				env := new(pb.Envelope)
				if from == victim && proto.Unmarshal(msg, env) == nil && env.GetUnmask() != nil {
					victimRevealed = true
				}
			}
			res, err := secaggtest.Run(config(ids, 3, 64), ids, inputs, secaggtest.Options{
				Drop: tc.drop, Tap: tap, Tamper: unmaskTamper(t, victim, tc.edit),
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := res.ClientErrors[victim]; !errors.Is(err, tc.want) {
				t.Fatalf("victim's error = %v, want %v", err, tc.want)
			}
			if victimRevealed {
				t.Error("the victim revealed shares to an inconsistent server")
			}
			var gone []secagg.ClientID
			for c := range tc.drop {
				gone = append(gone, c)
			}
			// The victim's masked input is in the sum: it dropped at unmasking.
			checkResult(t, ids, inputs, res, without(ids.Clients, gone...))
		})
	}
}

// TestSplitSurvivorViews: a server that shows different survivor sets to
// different clients cannot collect t consistency signatures on either.
func TestSplitSurvivorViews(t *testing.T) {
	ids := secaggtest.NewIdentities(5)
	inputs := randomInputs(6, 5, 16)
	split := func(from, to secagg.ClientID, msg []byte) []byte {
		env := new(pb.Envelope)
		if proto.Unmarshal(msg, env) != nil || env.GetConsistencyRequest() == nil || (to != "client-00" && to != "client-01" && to != "client-02") {
			return msg
		}
		env.GetConsistencyRequest().Survivors = []uint32{0, 1, 2} // pretends 3 and 4 dropped
		out, _ := proto.Marshal(env)
		return out
	}
	res, err := secaggtest.Run(config(ids, 3, 16), ids, inputs, secaggtest.Options{Tamper: split})
	if err != nil {
		t.Fatal(err)
	}
	// The honest server code refuses their signatures on the other set, so
	// only clients 3 and 4 remain: the session aborts.
	if !errors.Is(res.Err, secagg.ErrTooFewSurvivors) || res.Sum != nil {
		t.Fatalf("Result = %d elements, %v; want ErrTooFewSurvivors", len(res.Sum), res.Err)
	}
}

func TestBadSignatures(t *testing.T) {
	ids := secaggtest.NewIdentities(4)
	inputs := randomInputs(8, 4, 32)
	t.Run("server drops a forged advertisement", func(t *testing.T) {
		forger := ids.Signer("client-00") // client-03 signs with client-00's key
		res, err := secaggtest.Run(config(ids, 3, 32), ids, inputs, secaggtest.Options{
			Signers: map[secagg.ClientID]secagg.Signer{"client-03": forger},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.ServerErrors) != 1 || !errors.Is(res.ServerErrors[0], secagg.ErrBadSignature) {
			t.Fatalf("server errors = %v, want one ErrBadSignature", res.ServerErrors)
		}
		checkResult(t, ids, inputs, res, without(ids.Clients, "client-03"))
	})
	t.Run("client refuses a relayed forged advertisement", func(t *testing.T) {
		tamper := func(from, to secagg.ClientID, msg []byte) []byte {
			env := new(pb.Envelope)
			if to != "client-01" || proto.Unmarshal(msg, env) != nil || env.GetAdvertiseList() == nil {
				return msg
			}
			env.GetAdvertiseList().Adverts[2].Sig[5] ^= 1
			out, _ := proto.Marshal(env)
			return out
		}
		res, err := secaggtest.Run(config(ids, 3, 32), ids, inputs, secaggtest.Options{Tamper: tamper})
		if err != nil {
			t.Fatal(err)
		}
		if err := res.ClientErrors["client-01"]; !errors.Is(err, secagg.ErrBadSignature) {
			t.Fatalf("client-01 error = %v, want ErrBadSignature", err)
		}
		checkResult(t, ids, inputs, res, without(ids.Clients, "client-01"))
	})
	t.Run("client refuses substituted keys", func(t *testing.T) {
		tamper := func(from, to secagg.ClientID, msg []byte) []byte {
			env := new(pb.Envelope)
			if to != "client-01" || proto.Unmarshal(msg, env) != nil || env.GetAdvertiseList() == nil {
				return msg
			}
			a := env.GetAdvertiseList().Adverts
			a[2].SPk, a[3].SPk = a[3].SPk, a[2].SPk
			out, _ := proto.Marshal(env)
			return out
		}
		res, err := secaggtest.Run(config(ids, 3, 32), ids, inputs, secaggtest.Options{Tamper: tamper})
		if err != nil {
			t.Fatal(err)
		}
		if err := res.ClientErrors["client-01"]; !errors.Is(err, secagg.ErrBadSignature) {
			t.Fatalf("client-01 error = %v, want ErrBadSignature", err)
		}
	})
}

// TestWireLooksUniform captures every message of a session whose inputs are
// small and structured, and checks that the masked inputs look uniform and
// that no input element appears anywhere on the wire.
func TestWireLooksUniform(t *testing.T) {
	const n, length = 4, 8192
	ids := secaggtest.NewIdentities(n)
	inputs := make([][]uint64, n)
	for i := range inputs {
		inputs[i] = make([]uint64, length)
		for j := range inputs[i] {
			inputs[i][j] = 0x5a5a000000000000 | uint64(i)<<32 | uint64(j) // recognisable
		}
	}
	var wire [][]byte
	var masked []byte
	tap := func(from, to secagg.ClientID, msg []byte) {
		wire = append(wire, msg)
		env := new(pb.Envelope)
		if proto.Unmarshal(msg, env) == nil && env.GetMaskedInput() != nil {
			masked = append(masked, env.GetMaskedInput().Packed...)
		}
	}
	res, err := secaggtest.Run(config(ids, 3, length), ids, inputs, secaggtest.Options{Tap: tap})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, ids, inputs, res, ids.Clients)
	if len(masked) != n*length*8 {
		t.Fatalf("captured %d masked bytes, want %d", len(masked), n*length*8)
	}
	for _, msg := range wire {
		for i := range inputs {
			for _, j := range []int{0, 1, 777, length - 1} {
				var pat [8]byte
				binary.LittleEndian.PutUint64(pat[:], inputs[i][j])
				if bytes.Contains(msg, pat[:]) {
					t.Fatalf("input %d element %d appears in plaintext on the wire", i, j)
				}
			}
			if bytes.Contains(msg, []byte{0x5a, 0x5a}) && bytes.Count(msg, []byte{0x5a, 0x5a}) > len(msg)/1000+8 {
				t.Fatalf("input marker bytes 0x5a5a are over-represented in a message")
			}
		}
	}
	// Byte frequencies: chi-square with 255 degrees of freedom. For uniform
	// bytes it exceeds 340 with probability below 3e-4.
	var freq [256]int
	ones := 0
	for _, b := range masked {
		freq[b]++
		ones += bits.OnesCount8(b)
	}
	exp := float64(len(masked)) / 256
	chi := 0.0
	for _, f := range freq {
		d := float64(f) - exp
		chi += d * d / exp
	}
	if chi > 340 {
		t.Errorf("masked bytes: chi-square %.1f over 255 degrees of freedom, want below 340 for uniform bytes", chi)
	}
	// Bit balance: ones among 8·len bits, within 5 standard deviations.
	total := float64(8 * len(masked))
	if dev := (float64(ones) - total/2) / (0.5 * math.Sqrt(total)); dev > 5 || dev < -5 {
		t.Errorf("masked bits: %d ones of %.0f, %.1f standard deviations from half", ones, total, dev)
	}
	// The top byte of every plain element is 0x5a; masked, it must not be.
	top := 0
	for k := 7; k < len(masked); k += 8 {
		if masked[k] == 0x5a {
			top++
		}
	}
	if exp := len(masked) / 8 / 256; top > 3*exp+20 {
		t.Errorf("masked top bytes equal the input's 0x5a %d times, want about %d", top, exp)
	}
}

func TestConfigErrors(t *testing.T) {
	ids := secaggtest.NewIdentities(5)
	good := config(ids, 3, 10)
	cases := []struct {
		name string
		edit func(*secagg.Config)
	}{
		{"no session", func(c *secagg.Config) { c.Session = nil }},
		{"long session", func(c *secagg.Config) { c.Session = make([]byte, 65) }},
		{"one client", func(c *secagg.Config) { c.Clients = c.Clients[:1] }},
		{"duplicate client", func(c *secagg.Config) { c.Clients = append(slices.Clone(c.Clients[:4]), c.Clients[0]) }},
		{"empty client id", func(c *secagg.Config) { c.Clients = append(slices.Clone(c.Clients[:4]), "") }},
		{"threshold not a majority", func(c *secagg.Config) { c.Threshold = 2 }},
		{"threshold above n", func(c *secagg.Config) { c.Threshold = 6 }},
		{"empty vector", func(c *secagg.Config) { c.VectorLen = 0 }},
		{"vector too long", func(c *secagg.Config) { c.VectorLen = secagg.MaxVectorLen + 1 }},
		{"no verifier", func(c *secagg.Config) { c.Verify = nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			if _, err := secagg.NewServer(secagg.ServerConfig{Config: cfg}); err == nil {
				t.Error("NewServer accepted the config")
			}
			if _, err := secagg.NewClient(secagg.ClientConfig{Config: cfg, Self: "client-00", Signer: ids.Signer("client-00")}, make([]uint64, cfg.VectorLen)); err == nil {
				t.Error("NewClient accepted the config")
			}
		})
	}
	if _, err := secagg.NewClient(secagg.ClientConfig{Config: good, Self: "stranger", Signer: ids.Signer("client-00")}, make([]uint64, 10)); err == nil {
		t.Error("NewClient accepted a client outside the roster")
	}
	if _, err := secagg.NewClient(secagg.ClientConfig{Config: good, Self: "client-00", Signer: ids.Signer("client-00")}, make([]uint64, 9)); err == nil {
		t.Error("NewClient accepted an input of the wrong length")
	}
	if _, err := secagg.NewClient(secagg.ClientConfig{Config: good, Self: "client-00"}, make([]uint64, 10)); err == nil {
		t.Error("NewClient accepted no signer")
	}
}

func TestInputBound(t *testing.T) {
	for _, n := range []int{1, 3, 10, 1000} {
		b := secagg.InputBound(n)
		sum := make([]uint64, 2)
		for range n {
			sum[0] += uint64(b)
			sum[1] += uint64(-b)
		}
		got := secagg.Signed(sum)
		if got[0] != b*int64(n) || got[1] != -b*int64(n) {
			t.Errorf("n=%d: Signed(sum of ±%d) = %v, want ±%d", n, b, got, b*int64(n))
		}
	}
}

func TestStringsRedacted(t *testing.T) {
	ids := secaggtest.NewIdentities(3)
	cfg := config(ids, 2, 4)
	c, err := secagg.NewClient(secagg.ClientConfig{Config: cfg, Self: "client-01", Signer: ids.Signer("client-01")}, make([]uint64, 4))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(); err != nil {
		t.Fatal(err)
	}
	srv, _ := secagg.NewServer(secagg.ServerConfig{Config: cfg})
	if got, want := fmt.Sprint(c), "secagg.Client(client-01, advertise)"; got != want {
		t.Errorf("client prints as %q, want %q", got, want)
	}
	if got, want := fmt.Sprint(srv), "secagg.Server(3 clients, advertise)"; got != want {
		t.Errorf("server prints as %q, want %q", got, want)
	}
}
