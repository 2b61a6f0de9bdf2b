// Package bench runs xnode's protocols end to end in one process on synthetic
// resident-ID-like sets, checks the answer against the known overlap, and
// states the cost against the primitive floor measured in the same run.
package bench

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"xnode/crypto"
	"xnode/node/datasets"
	"xnode/protocol"
	"xnode/protocol/memconn"
	"xnode/protocol/psi/ecdh"
)

// ErrWrongAnswer is returned when a protocol result differs from the known
// overlap of the synthetic sets.
var ErrWrongAnswer = errors.New("benchmark answer differs from the ground truth")

// Options configure one ECDH-PSI benchmark.
type Options struct {
	N, M      int     // querier and responder set sizes
	Overlap   float64 // shared items as a fraction of min(N, M)
	Suite     string
	Mode      string
	BatchSize int
	Workers   int
	Seed      uint64
	NoFloor   bool
	// Repeat runs protocol and floor this many times, alternating, and
	// reports the best of each (default 1).
	Repeat int
	// XFile and YFile, when both set, replace the synthetic sets with ID lists
	// read from files (one identifier per line, as ../shared/peers/gen_ids.py
	// writes them); each line is namespaced "cn_id:" as a dataset import would.
	XFile, YFile string
	// Progress, if set, is called about every 200 ms with the querier's and
	// responder's stats while the protocol runs.
	Progress func(q, r ecdh.Stats)
}

// Report is the outcome of one run.
type Report struct {
	Suite        string             `json:"suite"`
	Mode         string             `json:"mode"`
	N            int                `json:"n"`
	M            int                `json:"m"`
	Overlap      int                `json:"overlap"`
	Cores        int                `json:"cores"`
	GoVersion    string             `json:"go_version"`
	Correct      bool               `json:"correct"`
	Cardinality  int                `json:"cardinality"`
	Seconds      float64            `json:"seconds"`
	Phases       map[string]float64 `json:"phase_seconds"`
	BytesQToR    int64              `json:"bytes_querier_to_responder"`
	BytesRToQ    int64              `json:"bytes_responder_to_querier"`
	PeakRSSBytes int64              `json:"peak_rss_bytes"`
	FloorSeconds float64            `json:"floor_seconds,omitempty"`
	Samples      []float64          `json:"samples_seconds,omitempty"`
	FloorSamples []float64          `json:"floor_samples_seconds,omitempty"`
	RatioToFloor float64            `json:"ratio_to_floor,omitempty"`
	ItemsPerSec  float64            `json:"items_per_second"`
}

// Sets returns the synthetic sets: x has n items, y has m, and exactly
// overlap of them are shared. Items look like namespaced resident IDs
// ("cn_id:" + 18 digits with a valid check digit), in shuffled order.
func Sets(n, m int, overlapFrac float64, seed uint64) (x, y [][]byte, overlap int) {
	overlap = int(overlapFrac * float64(min(n, m)))
	overlap = max(0, min(overlap, n, m))
	next := 0
	draw := func(k int) [][]byte {
		out := make([][]byte, k)
		for i := range out {
			out[i] = ResidentID(next)
			next++
		}
		return out
	}
	shared := draw(overlap)
	x = append(draw(n-overlap), shared...)
	y = append(draw(m-overlap), shared...)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	rng.Shuffle(len(x), func(i, j int) { x[i], x[j] = x[j], x[i] })
	rng.Shuffle(len(y), func(i, j int) { y[i], y[j] = y[j], y[i] })
	return x, y, overlap
}

// ReadIDs reads one identifier per line (CR stripped, empty lines skipped)
// and namespaces each as "cn_id:".
func ReadIDs(path string) ([][]byte, error) {
	if path == "" {
		return nil, errors.New("both --querier-file and --responder-file are needed")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read ID list: %w", err)
	}
	var out [][]byte
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line != "" {
			out = append(out, []byte("cn_id:"+line))
		}
	}
	return out, nil
}

// Overlap counts distinct items of x that are in y, with plain maps.
func Overlap(x, y [][]byte) int {
	inY := make(map[string]struct{}, len(y))
	for _, v := range y {
		inY[string(v)] = struct{}{}
	}
	seen := make(map[string]struct{})
	for _, v := range x {
		if _, ok := inY[string(v)]; ok {
			seen[string(v)] = struct{}{}
		}
	}
	return len(seen)
}

var areas = []string{"110101", "110105", "310104", "310115", "440103", "440305", "330106", "320102", "510104", "420102", "610113", "370202"}

// ResidentID returns the i-th distinct synthetic namespaced resident ID.
func ResidentID(i int) []byte {
	area := areas[i%len(areas)]
	i /= len(areas)
	day := time.Date(1955, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i%18000)
	i /= 18000
	seq := i % 1000
	body := area + day.Format("20060102") + fmt.Sprintf("%03d", seq)
	return []byte("cn_id:" + body + string(datasets.CNIDCheckChar(body)))
}

// Run runs one benchmark.
func Run(ctx context.Context, o Options) (Report, error) {
	suite, err := crypto.Lookup(o.Suite)
	if err != nil {
		return Report{}, err
	}
	if o.Mode == "" {
		o.Mode = ecdh.Intersection.String()
	}
	mode, err := ecdh.ParseMode(o.Mode)
	if err != nil {
		return Report{}, err
	}
	if o.N < 0 || o.M < 0 {
		return Report{}, fmt.Errorf("set sizes must not be negative (got --n %d --m %d)", o.N, o.M)
	}
	if o.Overlap < 0 || o.Overlap > 1 {
		return Report{}, fmt.Errorf("--overlap %v is not a fraction between 0 and 1", o.Overlap)
	}
	var (
		x, y    [][]byte
		overlap int
	)
	if o.XFile != "" || o.YFile != "" {
		if x, err = ReadIDs(o.XFile); err != nil {
			return Report{}, err
		}
		if y, err = ReadIDs(o.YFile); err != nil {
			return Report{}, err
		}
		o.N, o.M = len(x), len(y)
		overlap = Overlap(x, y)
	} else {
		x, y, overlap = Sets(o.N, o.M, o.Overlap, o.Seed)
	}
	rep := Report{
		Suite: suite.Name(), Mode: mode.String(), N: o.N, M: o.M, Overlap: overlap,
		Cores: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), Phases: map[string]float64{},
	}
	cfg := ecdh.Config{Suite: suite, Mode: mode, Session: []byte("xnode-bench"), BatchSize: o.BatchSize, Workers: o.Workers}
	repeat := max(o.Repeat, 1)
	// Protocol and floor alternate, and the best of each counts: on a
	// shared machine that keeps their ratio honest.
	for i := 0; i < repeat; i++ {
		one, err := session(ctx, cfg, x, y, o.Progress)
		if err != nil {
			return rep, err
		}
		one.correct = check(mode, x, y, overlap, one.q, one.r)
		rep.Samples = append(rep.Samples, one.seconds)
		if i == 0 || one.seconds < rep.Seconds {
			rep.Seconds, rep.Phases = one.seconds, one.phases
		}
		rep.BytesQToR, rep.BytesRToQ = one.qToR, one.rToQ
		rep.Cardinality = one.q.Cardinality
		if i == 0 {
			rep.Correct = one.correct
		} else {
			rep.Correct = rep.Correct && one.correct
		}
		rep.PeakRSSBytes = peakRSS()
		runtime.GC()
		if o.NoFloor {
			continue
		}
		floor, err := Floor(suite, x, y, o.Workers)
		if err != nil {
			return rep, err
		}
		rep.FloorSamples = append(rep.FloorSamples, floor.Seconds())
		if i == 0 || floor.Seconds() < rep.FloorSeconds {
			rep.FloorSeconds = floor.Seconds()
		}
	}
	if o.N+o.M > 0 && rep.Seconds > 0 {
		rep.ItemsPerSec = float64(o.N+o.M) / rep.Seconds
	}
	if rep.FloorSeconds > 0 {
		rep.RatioToFloor = rep.Seconds / rep.FloorSeconds
	}
	if !rep.Correct {
		return rep, fmt.Errorf("%w: got cardinality %d, want %d", ErrWrongAnswer, rep.Cardinality, overlap)
	}
	return rep, nil
}

// sessionRun is one protocol run's outcome.
type sessionRun struct {
	seconds    float64
	phases     map[string]float64
	qToR, rToQ int64
	q, r       ecdh.Result
	correct    bool
}

// session runs both parties once over an in-memory pipe.
func session(ctx context.Context, cfg ecdh.Config, x, y [][]byte, progressFn func(q, r ecdh.Stats)) (sessionRun, error) {
	out := sessionRun{phases: map[string]float64{}}
	q, err := ecdh.NewQuerier(cfg, ecdh.Slice(x))
	if err != nil {
		return out, err
	}
	r, err := ecdh.NewResponder(cfg, ecdh.Slice(y))
	if err != nil {
		return out, err
	}
	a, b := memconn.Pipe(16, nil)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	var progress errgroup.Group
	if progressFn != nil {
		progress.Go(func() error {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return nil
				case <-t.C:
					progressFn(q.Stats(), r.Stats())
				}
			}
		})
	}
	start := time.Now()
	var g errgroup.Group
	g.Go(func() error {
		defer a.Close()
		if err := protocol.Run(runCtx, q, a); err != nil {
			return fmt.Errorf("querier: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := protocol.Run(runCtx, r, b); err != nil {
			b.Close()
			return fmt.Errorf("responder: %w", err)
		}
		return nil
	})
	err = g.Wait()
	out.seconds = time.Since(start).Seconds()
	close(stop)
	_ = progress.Wait()
	if err != nil {
		return out, err
	}
	out.qToR, out.rToQ = a.BytesSent(), b.BytesSent()
	for p, d := range q.Stats().Compute {
		out.phases["querier_"+string(p)] = d.Seconds()
	}
	for p, d := range r.Stats().Compute {
		out.phases["responder_"+string(p)] = d.Seconds()
	}
	if out.q, err = q.Result(); err != nil {
		return out, err
	}
	if out.r, err = r.Result(); err != nil {
		return out, err
	}
	return out, nil
}

// check compares results with the ground truth computed from the plaintext.
func check(mode ecdh.Mode, x, y [][]byte, overlap int, qr, rr ecdh.Result) bool {
	if qr.Cardinality != overlap || qr.PeerSize != len(y) || rr.PeerSize != len(x) {
		return false
	}
	if mode == ecdh.Cardinality {
		return qr.Matches == nil
	}
	inY := make(map[string]struct{}, len(y))
	for _, v := range y {
		inY[string(v)] = struct{}{}
	}
	if len(qr.Matches) != overlap {
		return false
	}
	for _, i := range qr.Matches {
		if _, ok := inY[string(x[i])]; !ok {
			return false
		}
	}
	if mode == ecdh.IntersectionBoth {
		inX := make(map[string]struct{}, len(x))
		for _, v := range x {
			inX[string(v)] = struct{}{}
		}
		if len(rr.Matches) != overlap {
			return false
		}
		for _, i := range rr.Matches {
			if _, ok := inX[string(y[i])]; !ok {
				return false
			}
		}
	}
	return true
}

// Floor times what ECDH-PSI cannot avoid: for every item of both sets one
// hash-to-group and two scalar multiplications, on the same cores.
func Floor(suite crypto.Suite, x, y [][]byte, workers int) (time.Duration, error) {
	key, err := suite.NewKey(crand.Reader)
	if err != nil {
		return 0, err
	}
	fk, ok := key.(crypto.FloorKey)
	if !ok {
		return 0, fmt.Errorf("suite %s cannot measure its floor", suite.Name())
	}
	dst := crypto.DST("psi-ecdh", suite.Name(), []byte("xnode-bench-floor"))
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	start := time.Now()
	for _, set := range [][][]byte{x, y} {
		var g errgroup.Group
		g.SetLimit(workers)
		for lo := 0; lo < len(set); lo += 128 {
			chunk := set[lo:min(lo+128, len(set))]
			g.Go(func() error {
				for _, v := range chunk {
					fk.Floor(v, dst)
				}
				return nil
			})
		}
		_ = g.Wait()
	}
	return time.Since(start), nil
}

// peakRSS reads the process's peak resident set size (Linux VmHWM).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}
