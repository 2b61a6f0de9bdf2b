package datasets

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"xnode/node/store"
)

// writeResidentCSV writes n rows of valid resident IDs, amounts and labels.
func writeResidentCSV(b testing.TB, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := make([]byte, 0, 1<<16)
	w = append(w, "id,amount,level\n"...)
	for i := 0; i < n; i++ {
		birth := time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i%30000)
		id := residentID("110101", birth.Format("20060102"), fmt.Sprintf("%03d", i/30000))
		w = append(w, id...)
		w = append(w, ',')
		w = strconv.AppendInt(w, int64(i%100000), 10)
		w = append(w, ".25,L"...)
		w = strconv.AppendInt(w, int64(i%3), 10)
		w = append(w, '\n')
		if len(w) > 60000 {
			f.Write(w)
			w = w[:0]
		}
	}
	f.Write(w)
}

// BenchmarkImport measures importing and streaming back a 200k-row CSV of
// resident IDs (go test -bench Import -benchtime 1x ./node/datasets).
// It reports rows/s for both and the heap in use after the import, which
// must stay bounded by the chunk size rather than the file size.
// BenchmarkImport imports 200k rows, or $XNODE_IMPORT_BENCH_ROWS (e.g.
// 10000000 for docs/BENCHMARKS.md), and reports the process's peak RSS.
func BenchmarkImport(b *testing.B) {
	rows := int64(200_000)
	if n, err := strconv.ParseInt(os.Getenv("XNODE_IMPORT_BENCH_ROWS"), 10, 64); err == nil && n > 0 {
		rows = n
	}
	dir := b.TempDir()
	csv := filepath.Join(dir, "ids.csv")
	writeResidentCSV(b, csv, int(rows))
	st, err := store.Open(filepath.Join(dir, "node.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc := New(st, nil)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		rep, err := svc.Import(ctx, ImportOptions{Name: "ids", File: csv, IDColumns: []string{"id"}, IDKind: KindCNID,
			ValueColumns: []string{"amount:decimal(2)"}, LabelColumns: []string{"level"}})
		if err != nil {
			b.Fatal(err)
		}
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heapMiB")
		if rep.Imported != rows {
			b.Fatalf("imported %d rows, want %d", rep.Imported, rows)
		}
		b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "import-rows/s")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peakRSS-MiB")
		start = time.Now()
		v, _ := svc.Open(ctx, "ids", rep.Version)
		r := v.IDs(ctx)
		dst := make([][]byte, 4096)
		n := 0
		for {
			k, err := r.Next(dst)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n += k
		}
		if int64(n) != rep.Imported {
			b.Fatalf("read %d ids, want %d", n, rep.Imported)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "read-ids/s")
	}
}

// peakRSS is the process's peak resident set size (Linux VmHWM), or 0.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
