package secagg_test

import (
	"testing"

	"xnode/protocol/secagg"
	"xnode/protocol/secagg/secaggtest"
)

// BenchmarkAggregate runs whole sessions in memory: 10 clients with
// 100,000-element vectors, t = 6, with no dropout and with two clients
// dropping after sharing (the server's costliest case: it re-derives their
// pairwise masks with every survivor). It reports the bytes each client sent
// and received as a multiple of its plaintext vector (8 bytes per element).
func BenchmarkAggregate(b *testing.B) {
	const n, length = 10, 100_000
	ids := secaggtest.NewIdentities(n)
	inputs := randomInputs(1, n, length)
	for _, bc := range []struct {
		name string
		drop map[secagg.ClientID]secagg.Round
	}{
		{"clients=10/len=100000/dropped=0", nil},
		{"clients=10/len=100000/dropped=2", map[secagg.ClientID]secagg.Round{"client-03": secagg.RoundMaskedInput, "client-07": secagg.RoundMaskedInput}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var sent, recv int64
			for b.Loop() {
				res, err := secaggtest.Run(config(ids, 6, length), ids, inputs, secaggtest.Options{Drop: bc.drop})
				if err != nil || res.Err != nil {
					b.Fatal(err, res.Err)
				}
				sent, recv = 0, 0
				for _, c := range ids.Clients {
					sent = max(sent, res.Sent[c])
					recv = max(recv, res.Received[c])
				}
			}
			plain := float64(8 * length)
			b.ReportMetric(float64(sent)/plain, "sent/plain")
			b.ReportMetric(float64(recv)/plain, "recv/plain")
			b.ReportMetric(float64(sent), "B-sent/client")
		})
	}
}
